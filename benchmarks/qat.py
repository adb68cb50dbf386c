#!/usr/bin/env python3
"""Does quantization-aware fine-tuning help a SIREN?  Rounding loss vs STE fine-tune.

Fits a SIREN (width 32, depth 4, 800 steps) to a 256x256 crop of a Kodak image in float, then
for each bit depth reports the full-image PSNR of the float model, of plain rounding to the
file's per-tensor steps, and of the rounded model after 120 straight-through fine-tune steps at
several Adam rates (each a fraction of the tensor's quantization step, all from the same
float snapshot).  PSNR is deterministic on a given machine, so CPU load does not matter.

    python benchmarks/qat.py ../shared/data/kodak/kodim01.png
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from PIL import Image
from torch.func import functional_call

from nfcodec import quant
from nfcodec.bitstream import SirenArch
from nfcodec.config import FitConfig, QuantConfig
from nfcodec.fit import choose_steps, fit
from nfcodec.models import Siren
from nfcodec.qat import fake_quant, qat_lr_factor, qat_optimizer
from nfcodec.render import image_coords, image_targets


def psnr_of(model, names, params, steps, coords, image) -> float:
    with torch.no_grad():
        weights = {n: (p if s is None else fake_quant(p, s)) for n, p, s in zip(names, params, steps)}
        out = functional_call(model, weights, (coords,))
        pix = torch.round((out + 1) * 127.5).clamp(0, 255)
        mse = ((pix - torch.from_numpy(image).reshape(-1, 3).float()) ** 2).mean().item()
    return 10 * math.log10(255**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image")
    ap.add_argument("--qat-steps", type=int, default=120)
    args = ap.parse_args()
    image = np.asarray(Image.open(args.image).convert("RGB"))[128:384, 256:512].copy()
    coords, target = image_coords(256, 256), image_targets(image)
    rec = SirenArch(in_features=2, out_features=3, width=32, depth=4, w0_first=30.0, w0_hidden=30.0)
    model = Siren(2, 3, 32, 4).init_weights_(torch.Generator().manual_seed(0))
    fit(model, coords, target, FitConfig(steps=800, lr=2e-3), QuantConfig(bits=10, qat_fraction=0.0))
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())
    snapshot = [p.detach().clone() for p in params]
    none = [None] * len(params)
    print(f"SIREN {rec.width}x{rec.depth}, 256x256 crop of {args.image}: float PSNR "
          f"{psnr_of(model, names, params, none, coords, image):.2f} dB")
    print("| bits | rounded | " + " | ".join(f"QAT lr={s}x step" for s in (0.1, 0.01, 0.003, 0.001)) + " |")
    print("|---|---|---|---|---|---|")
    for bits in (8, 10):
        steps = [quant.STEP_TABLE[i] for i in choose_steps(params, bits)]
        row = [psnr_of(model, names, params, steps, coords, image)]
        for scale in (0.1, 0.01, 0.003, 0.001):
            with torch.no_grad():
                for p, q in zip(params, snapshot):
                    p.copy_(q)
            opt, gen = qat_optimizer(params, steps, scale), torch.Generator().manual_seed(1)
            for it in range(args.qat_steps):
                for g in opt.param_groups:
                    g["lr"] = g["base_lr"] * qat_lr_factor(it, 0, args.qat_steps)
                idx = torch.randint(0, coords.shape[0], (16384,), generator=gen)
                weights = {n: fake_quant(p, s) for n, p, s in zip(names, params, steps)}
                loss = ((functional_call(model, weights, (coords[idx],)) - target[idx]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            row.append(psnr_of(model, names, params, steps, coords, image))
        with torch.no_grad():
            for p, q in zip(params, snapshot):
                p.copy_(q)
        print(f"| {bits} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
