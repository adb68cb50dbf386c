#!/usr/bin/env python3
"""Bits per weight of the entropy models, before and after the RD step search.

For each image: fit once (a preset, optionally downscaled), then code the same fitted network
with (a) the fixed 10-bit steps and (b) the RD-searched steps, each with every entropy model
alone (histogram, laplace, gaussian) and with the per-tensor best-of choice the encoder uses.
Bits per weight count each tensor's model parameters and ANS words (the TDAT payload).

    python benchmarks/entropy_models.py ../shared/data/kodak/kodim01.png ../shared/data/kodak/kodim03.png \
        --preset fast --scale 2
"""
from __future__ import annotations

import argparse
import platform
from fractions import Fraction

import numpy as np

from nfcodec import encoder
from nfcodec.bitstream import decode_tensors, encode_tensors, read_container, tensor_report
from nfcodec.config import get_preset
from nfcodec.media import load_image


def tdat(data: bytes) -> bytes:
    return next(c.data for c in read_container(data).chunks if c.ctype == b"TDAT")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--scale", type=int, default=1, help="keep every N-th pixel (CPU time)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, preset {args.preset}, scale 1/{args.scale}\n")
    print("| image | steps | weights | histogram | laplace | gaussian | best-of (file) | models chosen | PSNR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.images:
        img = load_image(path)[:: args.scale, :: args.scale]
        cfg = get_preset(args.preset)
        fitted = encoder.fit_signal(img[None], 0, Fraction(0), cfg)
        problem = encoder.quant_problem(fitted, None)
        searched, _ = encoder.rd_steps(problem, fitted.fit.steps)
        for label, steps in (("10-bit", fitted.fit.steps), ("RD search", searched)):
            data = encoder.container_bytes(fitted, steps, None)
            tensors = decode_tensors(tdat(data))
            n = sum(t.symbols.size for t in tensors)
            bpw = {m: 8 * len(encode_tensors(tensors, models=[m])) / n for m in ("histogram", "laplace", "gaussian")}
            best = 8 * len(tdat(data)) / n
            chosen = [r["model"] for r in tensor_report(tdat(data))]
            counts = ", ".join(f"{m} {chosen.count(m)}" for m in ("gaussian", "laplace", "histogram", "const")
                               if chosen.count(m))
            res = encoder.finish(fitted, data, 0.0)
            print(f"| {path.split('/')[-1]} | {label} | {n} | {bpw['histogram']:.2f} | {bpw['laplace']:.2f} | "
                  f"{bpw['gaussian']:.2f} | **{best:.2f}** ({len(data)} B, {res.bpp:.3f} bpp) | {counts} | "
                  f"{res.psnr:.2f} |", flush=True)


if __name__ == "__main__":
    main()
