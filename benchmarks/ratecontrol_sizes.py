#!/usr/bin/env python3
"""How big a network should rate control fit for a byte budget?  A sweep of the rate
controller's ``OVERSIZE`` (fit a network whose 10-bit file would be OVERSIZE x the budget, then
let the RD step search squeeze it to the budget) and of the SIREN depth, at fixed steps.

Every encode is a real ``--bpp`` encode (rate control + RD search); the table gives the decoded
PSNR of the file in the band.  Images are downscaled (``--scale``) to keep CPU time down.

    python benchmarks/ratecontrol_sizes.py ../shared/data/kodak/kodim01.png ../shared/data/kodak/kodim03.png \
        --scale 2 --bpp 0.3 0.6 1.2 --oversize 1.0 1.3 1.6 2.0 --depth 5 --steps 1000
"""
from __future__ import annotations

import argparse
import platform
from fractions import Fraction

from nfcodec import ratecontrol
from nfcodec.config import get_preset
from nfcodec.media import load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--scale", type=int, default=2, help="keep every N-th pixel (CPU time)")
    ap.add_argument("--bpp", type=float, nargs="+", default=[0.3, 0.6])
    ap.add_argument("--oversize", type=float, nargs="+", default=[ratecontrol.OVERSIZE])
    ap.add_argument("--depth", type=int, nargs="+", default=[5])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--representation", default="dense")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, default preset, steps {args.steps}, "
          f"scale 1/{args.scale}, {args.representation}\n")
    print("| image | bpp target | depth | oversize | width | bytes | bpp | PSNR (dB) | encode s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.images:
        img = load_image(path)[:: args.scale, :: args.scale]
        for target in args.bpp:
            for depth in args.depth:
                for over in args.oversize:
                    cfg = get_preset("default").replace(steps=args.steps, depth=depth,
                                                        representation=args.representation)
                    r = ratecontrol.encode_to_bpp(img[None], 0, Fraction(0), cfg, target, metadata=False,
                                                  oversize=over)
                    print(f"| {path.split('/')[-1]} | {target} | {depth} | {over} | {r.rate_control['width']} | "
                          f"{len(r.data)} | {r.bpp:.4f} | {r.psnr:.2f} | {r.seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
