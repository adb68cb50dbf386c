"""How many latent bits would a learned context model (Cool-chic's ARM) save? (issue 13)

    python benchmarks/grid_arm_probe.py FILE.nfc [--steps 1500] [--parent]

Offline, on the latent symbols of a grid file (no retraining of the latents): the bytes the file's
``causal`` coder spends on them, the ideal bits of the training proxy of that linear model (six
neighbours, activity bins, continuous Laplace; fitted here by Adam), and the ideal bits of a small
MLP over 16 causal neighbours (``--parent``: plus the co-located latent of the next coarser level)
that outputs a Laplace mean and log-scale, shared by all levels, fitted by Adam on the same
symbols.  The MLP's weights are not counted; the line below gives their count (a file would pay
about one byte each).  Ideal bits ignore the coder's table quantization (about 1-3%).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nfcodec.bitstream import CodedTensor, decode_tensors, encode_tensors, read_container
from nfcodec.bitstream.headers import GridArch
from nfcodec.models.grid import N_BINS, causal_bits, laplace_bits, latent_sizes

#: (dy, dx) of the 16 causal neighbours (rows above, then the left of the current row).
CONTEXT = [(-3, -1), (-3, 0), (-3, 1)] + [(dy, dx) for dy in (-2, -1) for dx in range(-2, 3)] + [(0, -3), (0, -2), (0, -1)]


def _features(q: torch.Tensor, parent: torch.Tensor | None) -> torch.Tensor:
    h, w = q.shape
    p = F.pad(q[None, None], (3, 3, 3, 0))[0, 0]
    cols = [p[3 + dy:3 + dy + h, 3 + dx:3 + dx + w] for dy, dx in CONTEXT]
    if parent is not None:
        cols.append(parent)
    return torch.stack(cols, dim=-1).reshape(-1, len(cols))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--parent", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    c = read_container(open(args.file, "rb").read())
    arch = GridArch.unpack(next(x.data for x in c.chunks if x.ctype == b"ARCH"))
    tensors = decode_tensors(next(x.data for x in c.chunks if x.ctype == b"TDAT"))
    sizes = latent_sizes(arch.height, arch.width, arch.levels)
    planes = [torch.from_numpy(tensors[l].symbols.reshape(s).astype(np.float32)) for l, s in enumerate(sizes)]
    pixels = arch.height * arch.width
    coded = sum(len(encode_tensors([CodedTensor(0, 0, tensors[l].symbols, shape=s)], models=["causal"]))
                for l, s in enumerate(sizes) if tensors[l].symbols.any() and min(s) > 1)
    print(f"{args.file}: causal coder {coded} B ({8 * coded / pixels:.4f} bpp of latents)")

    # the linear proxy, fitted
    coefs = nn.Parameter(torch.tensor([[0.35, 0.35, -0.05, 0.1, 0.05, 0.05]] * len(planes)))
    log_bins = nn.Parameter(torch.zeros(len(planes), N_BINS))
    opt = torch.optim.Adam([coefs, log_bins], lr=2e-2)
    for _ in range(300):
        bits = sum(causal_bits(q, coefs[l], log_bins[l]) for l, q in enumerate(planes))
        opt.zero_grad(), bits.backward(), opt.step()
    print(f"linear proxy (fitted): {bits.item() / 8:.0f} B")

    # the MLP context model, shared over levels
    feats, ys = [], []
    for l, q in enumerate(planes):
        parent = None
        if args.parent:
            if l + 1 < len(planes):
                up = F.interpolate(planes[l + 1][None, None], scale_factor=2, mode="nearest")[0, 0]
                parent = up[:q.shape[0], :q.shape[1]]
            else:
                parent = torch.zeros_like(q)
        feats.append(_features(q, parent))
        ys.append(q.reshape(-1))
    x, y = torch.cat(feats), torch.cat(ys)
    d = x.shape[1]
    net = nn.Sequential(nn.Linear(d, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                        nn.Linear(args.hidden, 2))
    n_params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = 1e-2 * (0.5 * (1 + np.cos(np.pi * step / args.steps)) * 0.99 + 0.01)
        out = net(x)
        bits = laplace_bits(y - out[:, 0], out[:, 1]).sum()
        opt.zero_grad(), bits.backward(), opt.step()
    print(f"MLP {d}-{args.hidden}-{args.hidden}-2 ({n_params} weights): {bits.item() / 8:.0f} B "
          f"({100 * (bits.item() / 8 / coded - 1):+.1f}% vs the coder, {n_params} B of weights at 8 bits)")


if __name__ == "__main__":
    main()
