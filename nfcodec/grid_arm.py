"""Fitting the ``arm`` entropy model's integer context network to a grid's latents (encoder only).

The network of :mod:`nfcodec.bitstream.arm` is trained in float (torch, Adam) to minimise the
ideal bits of the integer latents under a Laplace of its predicted mean and log2-scale, with the
decoder's clamps in the forward pass, then rounded to ``F`` fractional bits; ``F`` is chosen by
the exact coded size (:func:`arm_bytes`).  Why and what it buys: docs/grid.md ("The entropy model").
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F_

from .bitstream import CodedTensor, encode_tensors
from .bitstream.arm import ARM_CLAMP, ARM_HIDDEN_BITS, ARM_NEIGHBOURS, ArmNet

#: Hidden units of the two layers (226 weights: about 250 bytes in the file).
ARM_HIDDEN = 8
#: Adam steps of a first fit and of a warm-started refit; rows sampled per step.
ARM_STEPS, ARM_REFIT_STEPS, ARM_BATCH = 3000, 200, 16384
ARM_LR = 2e-2
#: Fractional bits tried when rounding the network (the smallest file wins).
ARM_F_CHOICES = (6, 7, 8)


def context_rows(q: torch.Tensor) -> torch.Tensor:
    """(h * w, 12): the twelve causal neighbours of every latent of plane ``q`` (h, w), in
    ARM_NEIGHBOURS order, 0 outside the plane, clamped as the decoder clamps them."""
    h, w = q.shape
    p = F_.pad(q[None, None], (3, 3, 3, 0))[0, 0]
    x = torch.stack([p[3 + dy:3 + dy + h, 3 + dx:3 + dx + w] for dy, dx in ARM_NEIGHBOURS], -1).reshape(-1, 12)
    return x.clamp(-ARM_CLAMP, ARM_CLAMP)


def _features(planes: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: the twelve clamped neighbours and the symbol of every latent of every plane."""
    xs, ys = [], []
    for q in planes:     # an (h, w) plane, or (c, h, w) planes (a video grid's level)
        for p in np.asarray(q, dtype=np.float32).reshape(-1, q.shape[-2], q.shape[-1]):
            p = torch.from_numpy(p)
            xs.append(context_rows(p))
            ys.append(p.reshape(-1))
    return torch.cat(xs), torch.cat(ys)


def arm_plane_bits(q: torch.Tensor, net: "ArmTorchNet") -> torch.Tensor:
    """Estimated bits of one (noisy, rounded or straight-through) latent plane under the float
    network: the training rate term of ``grid_rate = "arm"``; the gradient reaches each latent as
    a symbol and as a neighbour (detaching the neighbours, as the linear proxy does, measured
    worse: the 256x256 sample, fast preset, lambda 0.001: 1.3766 bpp at 29.20 dB against 1.3541
    bpp at 29.30 dB)."""
    return laplace2_bits(net(context_rows(q.detach() if ARM_RATE_DETACH else q)), q.reshape(-1)).sum()


#: Detach the neighbours in the rate term of grid_rate "arm" (as the linear proxy does); off: measured worse.
ARM_RATE_DETACH = False


class ArmTorchNet(torch.nn.Module):
    """The float twin of :class:`~nfcodec.bitstream.arm.ArmNet` (12 -> H -> H -> 2, clamped ReLUs)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = torch.nn.Linear(12, hidden), torch.nn.Linear(hidden, hidden), torch.nn.Linear(hidden, 2)
        with torch.no_grad():  # start near "mean 0, scale 1"
            self.l3.weight.mul_(0.1)
            self.l3.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top = float(2**ARM_HIDDEN_BITS)
        h = self.l1(x).clamp(0, top)
        h = self.l2(h).clamp(0, top)
        return self.l3(h)


def laplace2_bits(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Ideal bits of integers ``y`` under Laplace(mean out_0, scale 2**out_1) on unit bins."""
    b = torch.exp2(out[:, 1].clamp(-8, 12))
    a = (y - out[:, 0]).abs()
    hi = torch.exp(-(a + 0.5) / b)
    lo = torch.where(a >= 0.5, torch.exp(-(a - 0.5).clamp_min(0) / b), 2 - torch.exp(-(0.5 - a).clamp_min(0) / b))
    return -torch.log2((0.5 * (lo - hi)).clamp_min(2.0**-24))


class ArmFitter:
    """A float context network kept across fits of one encode (warm starts), rounded on demand."""

    def __init__(self, hidden: int = ARM_HIDDEN, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = ArmTorchNet(hidden)
        self.fits = 0

    def fit(self, planes: Sequence[np.ndarray], steps: Optional[int] = None) -> None:
        """Adam on the planes' latents (a first fit: ARM_STEPS, later ones ARM_REFIT_STEPS)."""
        x, y = _features(planes)
        steps = steps if steps is not None else (ARM_STEPS if self.fits == 0 else ARM_REFIT_STEPS)
        base = ARM_LR if self.fits == 0 else ARM_LR / 4        # a warm start moves less
        opt = torch.optim.Adam(self.net.parameters(), lr=base)
        with torch.enable_grad():
            for step in range(steps):
                opt.param_groups[0]["lr"] = base * (0.5 + 0.5 * math.cos(math.pi * step / steps))
                rows = torch.randint(0, y.numel(), (min(ARM_BATCH, y.numel()),), generator=self.gen)
                loss = laplace2_bits(self.net(x[rows]), y[rows]).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.fits += 1

    def rounded(self, F: int) -> ArmNet:
        """The network at ``F`` fractional bits (out_1 stays log2 of the scale)."""
        s = float(2**F)

        def q(t: torch.Tensor) -> np.ndarray:
            return np.clip(np.rint(t.detach().double().numpy() * s), -(2**15) + 1, 2**15 - 1).astype(np.int64)

        n = self.net
        return ArmNet(F, q(n.l1.weight), q(n.l1.bias), q(n.l2.weight), q(n.l2.bias), q(n.l3.weight), q(n.l3.bias))

    def best(self, planes: Sequence[np.ndarray], step: int = 0) -> tuple[ArmNet, int]:
        """The rounding with the fewest coded bytes of ``planes`` (every model offered), and its size."""
        out = None
        for F in ARM_F_CHOICES:
            net = self.rounded(F)
            size = arm_bytes(planes, net, step)
            if out is None or size < out[1]:
                out = (net, size)
        return out


def arm_bytes(planes: Sequence[np.ndarray], net: Optional[ArmNet], step: int = 0) -> int:
    """Bytes of the planes' tensor records (every entropy model offered; ``arm`` with ``net``)."""
    tensors = [CodedTensor(l, step, np.asarray(q).reshape(-1), shape=np.asarray(q).shape) for l, q in enumerate(planes)]
    return len(encode_tensors(tensors, hints={"arm": net} if net is not None else None))


@torch.no_grad()
def _own_bits(net: "ArmTorchNet", rows: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return laplace2_bits(net(rows), y)


def arm_step_bits(plane: np.ndarray, step: np.ndarray, net: "ArmTorchNet") -> np.ndarray:
    """Estimated change of an integer plane's bits under the float network when each latent alone
    moves by its ``step`` (same shape, -1, 0 or +1): its own symbol's change, exactly under the
    network, plus its neighbours' to first order (the gradient of their bits through their contexts).
    What the --bpp trim ranks its candidate moves by (nfcodec.grid_encoder._trim_order)."""
    q = torch.from_numpy(np.asarray(plane, dtype=np.float32))
    s = torch.from_numpy(np.asarray(step, dtype=np.float32)).reshape(-1)
    qv = q.clone().requires_grad_(True)
    with torch.enable_grad():
        rows = context_rows(qv)
        grad = torch.autograd.grad(laplace2_bits(net(rows), q.reshape(-1)).sum(), qv)[0].reshape(-1)
    rows, y = rows.detach(), q.reshape(-1)
    return (_own_bits(net, rows, y + s) - _own_bits(net, rows, y) + grad * s).numpy()
