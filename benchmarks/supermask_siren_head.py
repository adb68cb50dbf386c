#!/usr/bin/env python3
"""Why the frozen SIREN head has its own law (format.md section 5d): supermask SIREN on 64x64 Kodak
crops with the RGB head drawn from U(+-sqrt(6/fan_in)/d) for several divisors d (SIREN's own
init is d = w0 = 30), 64 x 3 network, 600 full-batch steps, default levels and density.

    python benchmarks/supermask_siren_head.py

Measured (2-core CPU): d = 30: 13.70 / 15.50 dB; 8: 19.79 / 17.34; 6: 23.85 / 17.30;
4: 22.80 / 16.61; 2: 18.80 / 15.86 (kodim03 / kodim05 crops, ~2.8 bpp each).  d = 6 was adopted.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import nfcodec
from nfcodec.archs import ARCHS
from nfcodec.archs import siren as S
from nfcodec.config import CodecConfig, FitConfig, ModelConfig, QuantConfig
from nfcodec.exact.rng import Law
from nfcodec.media import load_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
CROPS = {"kodim03": (200, 300), "kodim05": (100, 100)}


def main() -> None:
    spec = ARCHS.by_name("siren")
    base_laws = spec.init_laws
    cfg = CodecConfig(ModelConfig(width=64, depth=3), QuantConfig(bits=10),
                      FitConfig(steps=600, batch_pixels=0, warmup_steps=10, lr=3e-3, seed=0)).replace(
        representation="supermask")
    try:
        for d in (30, 8, 6, 4, 2):
            def laws(r, d=d):
                out = base_laws(r)
                out[-2] = Law("uniform", Fraction(6, r.width) / (d * d))
                return out

            object.__setattr__(spec, "init_laws", laws)   # the decoder reads the same law: closed loop holds
            row = []
            for name, (y, x) in CROPS.items():
                img = load_image(DATA / f"{name}.png")[y:y + 64, x:x + 64]
                r = nfcodec.encode(img, config=cfg)
                row.append(f"{name} {r.bpp:.3f} bpp {r.psnr:.2f} dB")
            print(f"d={d}: " + "; ".join(row), flush=True)
    finally:
        object.__setattr__(spec, "init_laws", base_laws)
    assert S.HEAD_DIVISOR == 6


if __name__ == "__main__":
    main()
