#!/usr/bin/env python3
"""Kodak benchmark: nfcodec vs Pillow JPEG (4:2:0) at matching bpp, plus coding efficiency.

For every image: encode with a preset (timed), decode the file (timed), write the decoded PNG and
re-read it to compute PSNR independently of the encoder's report, then find the JPEG quality whose
bpp is closest to ours (and the bpp JPEG needs to reach our PSNR).  It also measures the bits per
weight of the coded tensors against raw float16 weights and against zlib (level 9) of the same
integers.  Results go to a JSON-lines file (resumable: finished images are skipped) and a
Markdown table on stdout.

    python benchmarks/kodak.py ../shared/data/kodak --preset default --out bench-out/kodak-default.jsonl
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import nfcodec
from nfcodec.bitstream import decode_tensors, encode_tensors, read_container


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def jpeg(image: np.ndarray, quality: int) -> tuple[float, float]:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
    dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return 8 * len(buf.getvalue()) / (image.shape[0] * image.shape[1]), psnr(dec, image)


def jpeg_matching(image: np.ndarray, bpp: float, target_psnr: float) -> dict:
    curve = [(q, *jpeg(image, q)) for q in range(1, 96)]
    q, jb, jp = min(curve, key=lambda c: abs(c[1] - bpp))
    # bpp JPEG needs for our PSNR: interpolate along the (monotone in quality) curve
    need = next((b0 + (b1 - b0) * (target_psnr - p0) / (p1 - p0)
                 for (_, b0, p0), (_, b1, p1) in zip(curve, curve[1:]) if p0 <= target_psnr <= p1 and p1 > p0), None)
    return {"jpeg_quality": q, "jpeg_bpp": jb, "jpeg_psnr": jp, "jpeg_bpp_at_our_psnr": need}


def weight_coding(data: bytes) -> dict:
    tdat = next(c for c in read_container(data).chunks if c.ctype == b"TDAT")
    tensors = decode_tensors(tdat.data)
    n = sum(t.symbols.size for t in tensors)
    ints = np.concatenate([t.symbols for t in tensors]).astype("<i2").tobytes()
    per_model = {m: 8 * len(encode_tensors(tensors, models=[m])) / n for m in ("histogram", "laplace")}
    return {"params": n, "bits_per_weight": 8 * len(tdat.data) / n, "fp16_bits_per_weight": 16.0,
            "zlib_bits_per_weight": 8 * len(zlib.compress(ints, 9)) / n,
            "histogram_only_bits_per_weight": per_model["histogram"],
            "laplace_only_bits_per_weight": per_model["laplace"]}


def run_one(path: Path, preset: str, device: str) -> dict:
    source = np.asarray(Image.open(path).convert("RGB"))
    t0 = time.perf_counter()
    enc = nfcodec.encode(path, preset=preset, device=device)
    enc_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        nfc, png = Path(d) / "x.nfc", Path(d) / "x.png"
        nfc.write_bytes(enc.data)
        t0 = time.perf_counter()
        nfcodec.decode(nfc, png)
        dec_s = time.perf_counter() - t0
        decoded = np.asarray(Image.open(png).convert("RGB"))
        nbytes = os.path.getsize(nfc)
    row = {"image": path.name, "preset": preset, "width": source.shape[1], "height": source.shape[0],
           "bytes": nbytes, "bpp": 8 * nbytes / (source.shape[0] * source.shape[1]),
           "psnr": psnr(decoded, source), "reported_psnr": enc.psnr, "reported_bpp": enc.bpp,
           "encode_s": enc_s, "fit_s": enc.fit.seconds, "decode_s": dec_s, "device": enc.fit.device}
    row.update(jpeg_matching(source, row["bpp"], row["psnr"]))
    row.update(weight_coding(enc.data))
    return row


def table(rows: list[dict]) -> str:
    cols = ["image", "bytes", "bpp", "psnr", "encode_s", "decode_s", "jpeg_bpp", "jpeg_psnr", "jpeg_bpp_at_our_psnr",
            "bits_per_weight", "zlib_bits_per_weight"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else ("n/a" if v is None else str(v))  # noqa: E731
    for r in rows:
        out.append("| " + " | ".join(fmt(r[c]) for c in cols) + " |")
    def avg(c: str) -> float | None:
        vals = [r[c] for r in rows if r[c] is not None]
        return float(np.mean(vals)) if vals else None

    mean = {c: avg(c) if c != "image" else "**mean**" for c in cols}
    out.append("| " + " | ".join(fmt(v) for v in mean.values()) + " |")
    return "\n".join(out)


def coding_table(rows: list[dict]) -> str:
    """Mean bits per weight: ours (best model per tensor) vs single models, zlib and float16."""
    cols = [("bits_per_weight", "nfcodec (best model per tensor)"), ("histogram_only_bits_per_weight", "histogram only"),
            ("laplace_only_bits_per_weight", "laplace only"), ("zlib_bits_per_weight", "zlib -9 of the same int16 symbols"),
            ("fp16_bits_per_weight", "raw float16")]
    out = ["| coding of the quantized weights | mean bits per weight |", "|---|---|"]
    out += [f"| {name} | {np.mean([r[c] for r in rows]):.3f} |" for c, name in cols]
    return "\n".join(out)


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("bench-out/kodak.jsonl"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--report", action="store_true", help="only print the tables from --out (no encoding)")
    args = ap.parse_args()
    images = sorted(args.folder.glob("*.png"))[: args.limit or None]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.out.exists():
        done = {r["image"]: r for r in map(json.loads, args.out.read_text().splitlines()) if r["preset"] == args.preset}
    print(f"# machine: {cpu_name()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, nfcodec {nfcodec.__version__}", file=sys.stderr)
    for path in images:
        if path.name in done or args.report:
            continue
        row = run_one(path, args.preset, args.device)
        done[path.name] = row
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{path.name}: {row['bpp']:.4f} bpp {row['psnr']:.2f} dB (reported {row['reported_psnr']:.2f}), "
              f"enc {row['encode_s']:.1f} s, dec {row['decode_s']:.2f} s; JPEG {row['jpeg_bpp']:.3f} bpp "
              f"{row['jpeg_psnr']:.2f} dB", file=sys.stderr, flush=True)
    rows = [done[p.name] for p in images if p.name in done]
    print(table(rows))
    print()
    print(coding_table(rows))


if __name__ == "__main__":
    main()
