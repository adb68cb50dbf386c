"""Streamable latent grids (issue 13, item 4; docs/grid.md "Streamable levels"): the same image
coded in the single layout and in the width-chunks layout at several ``grid_prefix_weight``
values, at one --bpp target; prints each file's PSNR and every level's cumulative bpp and PSNR
(each level decoded exactly from the file's prefix, the encoder's pSNR rows).

    python benchmarks/grid_stream.py IMAGE --bpp 1.0 --preset fast --weights single 0 0.1 0.3

One encode per row; grid encodes are not bit-reproducible on the CPU (a few hundredths of a dB).
Rows are appended to benchmarks/results/grid/stream.jsonl.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import nfcodec
from nfcodec.media import load_image

OUT = pathlib.Path(__file__).resolve().parent / "results" / "grid" / "stream.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image")
    ap.add_argument("--bpp", type=float, default=1.0)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--weights", nargs="+", default=["single", "0", "0.1", "0.3"],
                    help="'single' (the single layout) or a grid_prefix_weight for the width-chunks layout")
    args = ap.parse_args()
    image = load_image(args.image)
    for w in args.weights:
        knobs = {} if w == "single" else {"layout": "width-chunks", "grid_prefix_weight": float(w)}
        t = time.perf_counter()
        r = nfcodec.encode(image, preset=args.preset, arch="grid", bpp=args.bpp, **knobs)
        row = {"image": pathlib.Path(args.image).name, "preset": args.preset, "target": args.bpp, "layout": w,
               "seconds": round(time.perf_counter() - t, 1), "bpp": round(r.bpp, 4), "psnr": round(r.psnr, 3),
               "levels": [{"planes": lv["width"], "bpp": round(lv["bpp"], 4), "psnr": round(lv["psnr"], 2)}
                          for lv in r.levels], "machine": platform.machine()}
        print(json.dumps(row), flush=True)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        with OUT.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
