"""What a wider context would buy the latents' context network, on one grid file's fixed latents
(issue 13, eighteenth session; a float probe, no format change).

    python benchmarks/grid_arm_context_probe.py FILE.nfc [--hidden 16] [--steps 3000] [--variants n12 n24 n12+up1 ...]

Reads the latent planes of FILE.nfc and, for each context variant, fits a float network
(inputs -> H -> H -> 2, clamped ReLUs as ``grid_arm.ArmTorchNet``; Adam, cosine rate, the
encoder's batch and seed) and prints its ideal bytes over every latent (no weights stored, no
rounding) and its weight count.  Variants:

- ``n12``: the format's twelve causal neighbours (``ARM_NEIGHBOURS``);
- ``n24``: every causal position of the 7 x 4 window (rows -3..-1 at columns -3..3, and row 0 at
  columns -3..-1), as Cool-chic's largest context;
- ``+up1``: the co-located latent of the next coarser plane (decoded first if planes are stored
  coarse to fine; 0 for the coarsest), ``+up5``: it and its four neighbours in that plane;
- ``+lvl``: the plane's level index (0 finest), scaled to [0, 1];
- a suffix ``@logistic``, ``@gauss`` or ``@lap0`` changes the distribution from the format's Laplace
  (mean, log2 scale) to a logistic or Gaussian of the same two outputs, or to a Laplace mixed with a
  spike at 0 (a third output, the spike's logit).

The stored-weight cost is about 1.8 bytes per weight (16 hidden units: 514 weights, 917 B between
the float ideal and the coded bytes on kodim01, fast preset, 0.5 bpp).  Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F_

from nfcodec import grid_arm
from nfcodec.bitstream.arm import ARM_CLAMP, ARM_HIDDEN_BITS, ARM_NEIGHBOURS

from grid_arm_recode import latent_planes

N24 = tuple((dy, dx) for dy in (-3, -2, -1) for dx in range(-3, 4)) + ((0, -3), (0, -2), (0, -1))


def _shifted(p: torch.Tensor, offsets) -> torch.Tensor:
    h, w = p.shape
    pad = F_.pad(p[None, None], (3, 3, 3, 3))[0, 0]
    return torch.stack([pad[3 + dy:3 + dy + h, 3 + dx:3 + dx + w] for dy, dx in offsets], -1).reshape(h * w, -1)


def features(planes: list[torch.Tensor], variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    base, *extras = variant.split("+")
    offsets = {"n12": ARM_NEIGHBOURS, "n24": N24}[base]
    xs, ys = [], []
    for l, p in enumerate(planes):
        h, w = p.shape
        cols = [_shifted(p, offsets)]
        coarse = planes[l + 1] if l + 1 < len(planes) else torch.zeros((h + 1) // 2, (w + 1) // 2)
        up = F_.pad(coarse[None, None], (1, 1, 1, 1))[0, 0]
        iy = torch.arange(h)[:, None] // 2 + 1
        ix = torch.arange(w)[None, :] // 2 + 1
        for e in extras:
            if e == "up1":
                cols.append(up[iy, ix].reshape(-1, 1))
            elif e == "up5":
                cols.append(torch.stack([up[iy + dy, ix + dx] for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))],
                                        -1).reshape(-1, 5))
            elif e == "lvl":
                cols.append(torch.full((h * w, 1), l / max(1, len(planes) - 1)))
            else:
                raise SystemExit(f"unknown variant part {e!r}")
        xs.append(torch.cat(cols, 1).clamp(-ARM_CLAMP, ARM_CLAMP))
        ys.append(p.reshape(-1))
    return torch.cat(xs), torch.cat(ys)


def _bin_bits(cdf, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Ideal bits of integers ``y`` in unit bins of a location-scale ``cdf`` (mean out_0, scale 2**out_1)."""
    b = torch.exp2(out[:, 1].clamp(-8, 12))
    p = cdf((y + 0.5 - out[:, 0]) / b) - cdf((y - 0.5 - out[:, 0]) / b)
    return -torch.log2(p.clamp_min(2.0**-24))


def _lap0_bits(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w = torch.sigmoid(out[:, 2])
    p = 2.0 ** -grid_arm.laplace2_bits(out[:, :2], y)
    return -torch.log2(((1 - w) * p + w * (y == 0).float()).clamp_min(2.0**-24))


DISTS = {"laplace": (2, grid_arm.laplace2_bits),
         "logistic": (2, lambda out, y: _bin_bits(torch.sigmoid, out, y)),
         "gauss": (2, lambda out, y: _bin_bits(lambda t: 0.5 * (1 + torch.erf(t / math.sqrt(2))), out, y)),
         "lap0": (3, _lap0_bits)}


class Net(torch.nn.Module):
    def __init__(self, inputs: int, hidden: int, outputs: int = 2) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = torch.nn.Linear(inputs, hidden), torch.nn.Linear(hidden, hidden), torch.nn.Linear(hidden, outputs)
        with torch.no_grad():
            self.l3.weight.mul_(0.1)
            self.l3.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = float(2**ARM_HIDDEN_BITS)
        return self.l3(self.l2(self.l1(x).clamp(0, top)).clamp(0, top))


def fit_ideal(x: torch.Tensor, y: torch.Tensor, hidden: int, steps: int, seed: int = 0,
              dist: str = "laplace") -> tuple[float, int]:
    outputs, bits_of = DISTS[dist]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = Net(x.shape[1], hidden, outputs)
    opt = torch.optim.Adam(net.parameters(), lr=grid_arm.ARM_LR)
    for step in range(steps):
        opt.param_groups[0]["lr"] = grid_arm.ARM_LR * (0.5 + 0.5 * math.cos(math.pi * step / steps))
        rows = torch.randint(0, y.numel(), (min(grid_arm.ARM_BATCH, y.numel()),), generator=gen)
        loss = bits_of(net(x[rows]), y[rows]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        bits = bits_of(net(x), y).sum().item()
    return bits / 8, sum(p.numel() for p in net.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--variants", nargs="+", default=["n12", "n24", "n12+up1", "n12+up5", "n12+lvl", "n24+up5"])
    args = ap.parse_args()
    symbols = latent_planes(args.file)
    planes = [torch.from_numpy(q.astype(np.float32)) for q in symbols]
    print(f"{args.file}: {len(planes)} planes {[tuple(p.shape) for p in planes]}, "
          f"{sum(p.numel() for p in planes)} latents, {grid_arm.arm_bytes(symbols, None)} B without a network")
    for v in args.variants:
        context, _, dist = v.partition("@")
        x, y = features(planes, context)
        t0 = time.perf_counter()
        ideal, weights = fit_ideal(x, y, args.hidden, args.steps, dist=dist or "laplace")
        print(f"  {v:14s} {x.shape[1]:2d} inputs, {weights} weights: float ideal {ideal:.0f} B, "
              f"+ weights at ~1.8 B each {ideal + 1.8 * weights:.0f} B ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
