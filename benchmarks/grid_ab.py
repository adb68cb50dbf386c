"""Paired A/B of two latent-grid configurations on several images at the same --bpp (issue 13).

    python benchmarks/grid_ab.py --bpp 0.5 --a preset=fast --b preset=fast,grid_head_kernel=3 \
        ../shared/data/kodak/kodim01.png ../shared/data/kodak/kodim02.png

``--lambda X`` instead of ``--bpp`` compares the two at a fixed lambda (no controller, no latent
scale search): the training's own rate-distortion trade-off, without rate control's part in it.

Each image is encoded with A, then with B, one after the other in this process (run it alone on
the machine: two torch processes on 2 cores slow each other down several times).  Rows (image,
config, bpp, PSNR, seconds, lambda, delta) are appended to ``benchmarks/results/grid/ab.jsonl``;
the summary gives the mean PSNR and bpp difference B - A over the images.

Why paired and over several images: a single fit moves by a few tenths of a dB with any change of
its trajectory (seen on kodim04 at the fast preset: a change that gave +0.60 dB there gave
-0.02 dB on kodim01), so one image cannot tell a 0.2 dB improvement from a different trajectory.
Knobs are the flat ``nfcodec.encode`` overrides (``grid_iters=2400``, ``grid_hidden=24,24``, ...).

``--a-csv RESULTS.csv`` takes A from an ``nfc eval`` results file instead of encoding it again (the
nfc-grid row of each image at setting ``bpp=<--bpp>``, i.e. the default preset; re-encoding the
same image reproduces it to about 0.002 dB on this machine: kodim09 at --bpp 1.5 gave 35.5372,
35.5368 and 35.5384 dB in three runs), which halves the cost of testing a change
against the default preset on images the Kodak record already measured.
"""
from __future__ import annotations

import argparse
import importlib
import csv
import json
import os
import time
from typing import Any

import numpy as np

import nfcodec

OUT = os.path.join(os.path.dirname(__file__), "results", "grid", "ab.jsonl")


def _knobs(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, text.replace(";", "|").split("|")):
        for kv in _split(part):
            key, value = kv.split("=", 1)
            out[key] = _value(value)
    return out


def _split(text: str) -> list[str]:
    """``a=1,b=2,3`` -> ``['a=1', 'b=2,3']`` (a comma before a token without '=' continues a tuple)."""
    items: list[str] = []
    for token in text.split(","):
        if "=" in token or not items:
            items.append(token)
        else:
            items[-1] += "," + token
    return items


def _value(text: str) -> Any:
    if "," in text:
        return tuple(int(v) for v in text.split(","))
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    target = ap.add_mutually_exclusive_group(required=True)
    target.add_argument("--bpp", type=float)
    target.add_argument("--lambda", dest="lam", type=float, help="a fixed lambda instead of a --bpp target")
    ap.add_argument("--a", default="", help="knobs of A, e.g. preset=fast,grid_iters=400")
    ap.add_argument("--b", required=True, help="knobs of B")
    ap.add_argument("--a-csv", help="take A (the default preset) from this nfc eval results.csv")
    ap.add_argument("--set", action="append", default=[], metavar="MODULE.NAME=VALUE",
                    help="set a module constant for the whole run (both configs), e.g. "
                         "nfcodec.models.grid.PROXY_MU_STEPS=4 or nfcodec.grid_encoder.CALIBRATE_EVERY=0; "
                         "recorded in each row's 'set' field")
    ap.add_argument("--b-set", action="append", default=[], metavar="MODULE.NAME=VALUE",
                    help="like --set, for B's encodes only (A runs with the module's own value); "
                         "recorded in B's rows' 'b_set' field")
    args = ap.parse_args()
    for item in args.set:
        _set_constant(item)
    if args.a_csv and args.lam is not None:
        ap.error("--a-csv holds --bpp rows: use --bpp with it")
    if args.a_csv and args.a:
        ap.error("--a and --a-csv exclude each other: the rows of an nfc eval run are the default preset")
    cached = _eval_rows(args.a_csv, args.bpp) if args.a_csv else {}
    rows = []
    for image in args.images:
        if args.a_csv:
            if os.path.abspath(image) not in cached:
                raise SystemExit(f"error: {args.a_csv} has no nfc-grid row for {image} at bpp={args.bpp:g}")
            rows.append(cached[os.path.abspath(image)])
            r = rows[-1]
            print(f"{r['image']} A (from {args.a_csv}): {r['psnr']:.3f} dB at {r['bpp']:.4f} bpp, "
                  f"{r['seconds']:.0f} s", flush=True)
        for name, text in ((("A", args.a),) if not args.a_csv else ()) + (("B", args.b),):
            knobs = _knobs(text)
            saved = [_set_constant(item) for item in (args.b_set if name == "B" else [])]
            t0 = time.perf_counter()
            if args.lam is not None:
                r = nfcodec.encode(image, arch="grid", **{"grid_lambda": args.lam, **knobs})
            else:
                r = nfcodec.encode(image, arch="grid", bpp=args.bpp, **knobs)
            row = {"image": os.path.basename(image), "config": name, "knobs": text, "target": args.bpp,
                   "bpp": r.bpp, "psnr": r.psnr, "seconds": time.perf_counter() - t0,
                   "lambda": (r.rate_control or {}).get("lambda"), "delta": (r.rate_control or {}).get("delta"),
                   "lambda_start": (r.fit.extra or {}).get("lambda_start")}
            extra = r.fit.extra or {}
            row.update({k: round(extra[k], 5) for k in ("delta1_bpp", "noise_end_bpp") if k in extra})
            if "moved" in (r.rate_control or {}):
                row["moved"] = r.rate_control["moved"]
            for module, attr, old in saved:
                setattr(module, attr, old)
            if args.set:
                row["set"] = args.set
            if saved:
                row["b_set"] = args.b_set
            if args.lam is not None:
                row["lambda"] = args.lam
            rows.append(row)
            print(f"{row['image']} {name}: {r.psnr:.3f} dB at {r.bpp:.4f} bpp, {row['seconds']:.0f} s", flush=True)
            with open(OUT, "a") as f:
                f.write(json.dumps(row) + "\n")
    a = [r for r in rows if r["config"] == "A"]
    b = [r for r in rows if r["config"] == "B"]
    dp = np.array([y["psnr"] - x["psnr"] for x, y in zip(a, b)])
    db = np.array([y["bpp"] / x["bpp"] - 1 for x, y in zip(a, b)])
    ta = sum(x["seconds"] for x in a)
    tb = sum(y["seconds"] for y in b)
    print(f"B - A over {len(dp)} images: PSNR {dp.mean():+.3f} dB (min {dp.min():+.3f}, max {dp.max():+.3f}), "
          f"bpp {100 * db.mean():+.2f}%, time {tb / ta:.2f}x")


def _set_constant(item: str) -> tuple[Any, str, Any]:
    """Set ``module.NAME=value``; return (module, NAME, the value it replaced) to restore it."""
    name, value = item.split("=", 1)
    module_name, attr = name.rsplit(".", 1)
    module = importlib.import_module(module_name)
    old = getattr(module, attr)
    setattr(module, attr, _value(value))
    return module, attr, old


def _eval_rows(path: str, bpp: float) -> dict[str, dict[str, Any]]:
    """The nfc-grid rows of an nfc eval results.csv at setting ``bpp=<bpp>``, keyed by absolute path."""
    out = {}
    with open(path, newline="") as f:
        for d in csv.DictReader(f):
            key, _, value = d["setting"].partition("=")
            if d["codec"] == "nfc-grid" and key == "bpp" and float(value) == bpp:
                out[os.path.abspath(d["file"])] = {
                    "image": os.path.basename(d["file"]), "config": "A", "knobs": f"nfc eval {path}",
                    "target": bpp, "bpp": float(d["bpp"]), "psnr": float(d["psnr"]),
                    "seconds": float(d["encode_s"]), "lambda": None, "delta": None}
    return out


if __name__ == "__main__":
    main()
