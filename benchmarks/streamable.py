#!/usr/bin/env python3
"""Issue 11 benchmark: streamable (width-chunks) files against single-width files and JPEG.

Parts (each appends JSON lines to ``OUT/<part>.jsonl`` and is resumable):

* ``spectral``: Kodak images, 4 levels (the default widths: half the preset's width, then equal steps), progressive
  training (and, with ``--slimmable``, the slimmable training of the paper's Alg. 2).  For every
  level: the prefix's bytes (the ``levels[].end`` offset) and PSNR; beside it a single-width dense
  file rate-controlled to the same bytes (the paper's "individual", ``nfcodec.encode(bpp=...)``)
  and JPEG at the largest quality that fits the same bytes.
* ``spatial``: one Kodak image, spatial growing (level k: the first k/4 of the columns; PSNR on
  that part).
* ``temporal``: carphone (QCIF, first ``--frames`` frames), SIREN on (t, x, y), temporal growing.
* ``unseen``: an image from ``../shared/data/images`` (never used by a test): the prefixes at the
  ``levels[].end`` offsets, a cut between two ends, and a dense file of the same size.

    python benchmarks/streamable.py --part spectral --images kodim01,kodim02 --preset fast
    python benchmarks/streamable.py --summary          # markdown tables from the JSON lines

Numbers go to docs/benchmarks.md ("Streamable neural fields (issue 11)").
"""
from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
KNOBS: dict = {}          # --device cuda: passed to every encode

import nfcodec  # noqa: E402
from nfcodec.decoder import open_stream  # noqa: E402
from nfcodec.media import load_image  # noqa: E402
from nfcodec.metrics import psnr  # noqa: E402


def _single(knobs: dict) -> dict:
    """The knobs of a single-layout file (no width-chunks settings)."""
    return {k: v for k, v in knobs.items() if k != "widths"}


def jpeg_at(img: np.ndarray, max_bytes: int) -> tuple[int, float]:
    """JPEG (4:2:0, optimized) at the highest quality whose file fits ``max_bytes``."""
    best = None
    for q in range(1, 101):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q, subsampling="4:2:0", optimize=True)
        if buf.tell() > max_bytes:
            break
        best = (buf.tell(), psnr(np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), img))
    return best if best is not None else (0, float("nan"))


def done_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()}


def emit(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def spectral(out: Path, names: list[str], preset: str, training: str, individual: bool) -> None:
    path = out / "spectral.jsonl"
    seen = done_keys(path)
    for name in names:
        key = f"{name}/{preset}/{training}"
        if key in seen:
            continue
        img = load_image(DATA / "kodak" / f"{name}.png")
        t = time.perf_counter()
        r = nfcodec.encode(img, preset=preset, layout="width-chunks", grow_training=training, metadata=False, **KNOBS)
        secs = time.perf_counter() - t
        rows = []
        for lv in r.levels:
            stream = open_stream(r.data[:lv["end"]], partial=True)
            got = stream.render(0)
            row = {"level": lv["level"], "width": lv["width"], "bytes": lv["end"],
                   "bpp": 8 * lv["end"] / img.shape[0] / img.shape[1], "psnr": psnr(got, img)}
            if individual:
                ind = nfcodec.encode(img, preset=preset, bpp=row["bpp"], metadata=False, **_single(KNOBS))
                row.update(single_bytes=ind.nbytes, single_psnr=ind.psnr, single_width=ind.config.model.width)
            jb, jp = jpeg_at(img, lv["end"])
            row.update(jpeg_bytes=jb, jpeg_psnr=jp)
            rows.append(row)
        emit(path, {"key": key, "image": name, "preset": preset, "training": training, "seconds": secs,
                    "file_bytes": r.nbytes, "levels": rows})


def spatial(out: Path, name: str, preset: str) -> None:
    path = out / "spatial.jsonl"
    key = f"{name}/{preset}"
    if key in done_keys(path):
        return
    img = load_image(DATA / "kodak" / f"{name}.png")
    t = time.perf_counter()
    r = nfcodec.encode(img, preset=preset, layout="width-chunks", growing="spatial", metadata=False, **KNOBS)
    secs = time.perf_counter() - t
    rows = []
    for lv in r.levels:
        got = open_stream(r.data[:lv["end"]], partial=True).render(0)
        rows.append({"level": lv["level"], "width": lv["width"], "columns": lv["cover"], "bytes": lv["end"],
                     "psnr_part": psnr(got, img[:, :got.shape[1]])})
    emit(path, {"key": key, "image": name, "preset": preset, "seconds": secs, "file_bytes": r.nbytes,
                "levels": rows})


def temporal(out: Path, frames: int, steps: int, width: int) -> None:
    path = out / "temporal.jsonl"
    key = f"carphone/{frames}/{steps}/{width}"
    if key in done_keys(path):
        return
    clip = nfcodec.read_video(DATA / "video" / "carphone_pristine.mp4", frames=f"0:{frames}")
    t = time.perf_counter()
    r = nfcodec.encode(clip, arch="siren", layout="width-chunks", growing="temporal", width=width, depth=5,
                       steps=steps, metadata=False, **KNOBS)
    secs = time.perf_counter() - t
    rows = []
    for lv in r.levels:
        stream = open_stream(r.data[:lv["end"]], partial=True)
        got = np.stack([f for _, f in stream.frames(range(stream.n_frames))])
        rows.append({"level": lv["level"], "width": lv["width"], "frames": lv["cover"], "bytes": lv["end"],
                     "psnr_frames": psnr(got, clip.frames[:got.shape[0]])})
    emit(path, {"key": key, "frames": frames, "steps": steps, "seconds": secs, "file_bytes": r.nbytes,
                "levels": rows})


def unseen(out: Path, image: str, preset: str, cuts: int = 120) -> None:
    """The issue's check on an image no test has seen: prefixes at the listed ends, cuts between
    them, ``cuts`` random cut offsets (level and PSNR never falling as the cut moves later),
    ``decode_progressive`` fed 1 KiB at a time, and a dense file of the same size."""
    path = out / "unseen.jsonl"
    key = f"{image}/{preset}"
    if key in done_keys(path):
        return
    img = load_image(DATA / "images" / image)
    t = time.perf_counter()
    r = nfcodec.encode(img, preset=preset, layout="width-chunks", metadata=False, **KNOBS)
    secs = time.perf_counter() - t
    ends = [lv["end"] for lv in r.levels]
    levels = {}
    rows = []
    for k, end in enumerate(ends):
        s = open_stream(r.data[:end], partial=True)
        levels[s.level] = s.render(0)
        mid = open_stream(r.data[:(end + ends[k + 1]) // 2], partial=True).level if k + 1 < len(ends) else None
        rows.append({"level": s.level, "end": end, "psnr": psnr(levels[s.level], img), "cut_between_decodes": mid})
    rng = np.random.default_rng(0)
    offsets = sorted(set(int(x) for x in rng.integers(0, len(r.data) + 1, cuts)))
    last, monotone, refused, agree = (0, -1.0), True, 0, True
    for cut in offsets:
        try:
            s = open_stream(r.data[:cut], partial=True)
        except nfcodec.BitstreamError:
            refused += 1
            monotone &= cut < ends[0]
            continue
        want = sum(e <= cut for e in ends)
        agree &= s.level == want and np.array_equal(s.render(0), levels[want])
        p = psnr(levels[s.level], img)
        monotone &= (s.level, p) >= last
        last = (s.level, p)
    pieces = [r.data[i:i + 1024] for i in range(0, len(r.data), 1024)]
    prog = list(nfcodec.decode_progressive(iter(pieces)))
    prog_ok = [p.level for p in prog] == list(range(1, len(ends) + 1)) and all(
        np.array_equal(p.image, levels[p.level]) for p in prog)
    dense = nfcodec.encode(img, preset=preset, bpp=8 * r.nbytes / img.shape[0] / img.shape[1], metadata=False,
                           **_single(KNOBS))
    nfc_path = out / f"unseen-{Path(image).stem}.nfc"
    nfc_path.write_bytes(r.data)
    info = json.loads(subprocess.run([str(Path(sys.executable).parent / "nfc"), "info", "--json", str(nfc_path)],
                                     capture_output=True, check=True).stdout)
    emit(path, {"key": key, "image": image, "shape": list(img.shape), "seconds": secs, "file_bytes": r.nbytes,
                "psnr": r.psnr, "dense_bytes": dense.nbytes, "dense_psnr": dense.psnr, "levels": rows,
                "info_ends": [lv["end"] for lv in info["levels"]], "random_cuts": len(offsets),
                "refused_before_level1": refused, "cuts_monotone": monotone, "cuts_agree": agree,
                "progressive_1KiB_ok": prog_ok, "progressive_levels": [p.level for p in prog],
                "progressive_received": [p.received for p in prog]})


def summary(out: Path) -> None:
    path = out / "spectral.jsonl"
    if path.exists():
        runs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        for preset, training in sorted({(r["preset"], r["training"]) for r in runs}):
            sel = [r for r in runs if r["training"] == training and r["preset"] == preset]
            print(f"\nspectral, {preset} preset, {training}, {len(sel)} images ({', '.join(r['image'] for r in sel)}):\n")
            print("| level | width | bpp of the prefix | streamable PSNR | single-width PSNR (bytes) | delta | "
                  "JPEG PSNR at the same bytes |")
            print("|---|---|---|---|---|---|---|")
            for k in range(len(sel[0]["levels"])):
                rows = [r["levels"][k] for r in sel]
                m = lambda f: float(np.mean([x[f] for x in rows if f in x and not math.isnan(x[f])]))  # noqa: E731
                single = f"{m('single_psnr'):.2f} ({m('single_bytes'):.0f})" if "single_psnr" in rows[0] else "-"
                delta = f"{m('psnr') - m('single_psnr'):+.2f}" if "single_psnr" in rows[0] else "-"
                jpeg = [x for x in rows if x.get("jpeg_bytes")]
                jtext = "does not fit" if not jpeg else (
                    f"{np.mean([x['jpeg_psnr'] for x in jpeg]):.2f}" + ("" if len(jpeg) == len(rows) else
                                                                        f" ({len(jpeg)} of {len(rows)} images)"))
                print(f"| {k + 1} | {rows[0]['width']} | {m('bpp'):.4f} | {m('psnr'):.2f} | {single} | {delta} | "
                      f"{jtext} |")
            print(f"\nencode seconds (mean): {np.mean([r['seconds'] for r in sel]):.0f}")
            for r in sel:
                print("  " + r["image"] + ": " + ", ".join(
                    f"L{x['level']} {x['psnr']:.2f} vs {x.get('single_psnr', float('nan')):.2f}" for x in r["levels"]))
    for part in ("spatial", "temporal", "unseen"):
        p = out / f"{part}.jsonl"
        if p.exists():
            print(f"\n{part}:")
            for line in p.read_text().splitlines():
                print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["spectral", "spatial", "temporal", "unseen"], action="append")
    ap.add_argument("--images", default="kodim01,kodim02,kodim03,kodim04")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--training", default="progressive", help="progressive, slimmable or both")
    ap.add_argument("--no-individual", action="store_true", help="skip the single-width files")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--video-steps", type=int, default=1000)
    ap.add_argument("--video-width", type=int, default=64)
    ap.add_argument("--unseen", default="coffee.png")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "streamable"))
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--device", default="", help="e.g. cuda (default: the encoder's auto)")
    ap.add_argument("--widths", default="", help="width-chunks widths, e.g. 16,32,48,64 (default: the codec's)")
    a = ap.parse_args()
    if a.device:
        KNOBS["device"] = a.device
    if a.widths:
        KNOBS["widths"] = tuple(int(w) for w in a.widths.split(","))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.summary:
        summary(out)
        return
    for part in a.part or ["spectral"]:
        if part == "spectral":
            for training in (["progressive", "slimmable"] if a.training == "both" else [a.training]):
                spectral(out, a.images.split(","), a.preset, training, not a.no_individual)
        elif part == "spatial":
            spatial(out, a.images.split(",")[0], a.preset)
        elif part == "temporal":
            temporal(out, a.frames, a.video_steps, a.video_width)
        else:
            unseen(out, a.unseen, a.preset)


if __name__ == "__main__":
    main()
