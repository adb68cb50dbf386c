"""NeRV: an image-wise neural video representation (Chen et al., 2021), as in appendix A.3 of
Choi et al. (``shared/papers/003``) without the supermask parts.

    k --t = k / T--> PE(b, l): (sin(b^0 pi t), cos(b^0 pi t), ..., sin(b^(l-1) pi t), cos(...))
      --> Linear(2l, hidden) -> GELU -> Linear(hidden, c1*h0*w0) -> GELU -> reshape (c1, h0, w0)
      --> blocks: [Conv k x k to c*f^2 -> PixelShuffle(f) -> GELU] per (f, c)
      --> head: Conv to 3 (no activation: RGB in [-1, 1], clamped when rounding to 8 bits)
      --> (3, h0*P, w0*P), cropped to the frame's top-left H x W window

The factor list and base map are derived from the frame size by
:func:`nfcodec.archs.nerv.nerv_layout`; every
hyper-parameter is read from the wire record (:class:`~nfcodec.bitstream.NervArch`), never
inferred from tensor shapes.  The positional encoding is computed in float64 and rounded to
float32, so frame k's input is a function of (k, T, b, l) only.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..archs.nerv import NERV_FACTORS, block_channels, nerv_layout  # noqa: F401  (re-exported)
from ..bitstream.headers import NervArch

__all__ = ["Nerv", "nerv_layout", "block_channels", "positional_encoding", "NERV_FACTORS"]


def positional_encoding(t: torch.Tensor, b: float, levels: int) -> torch.Tensor:
    """(N,) normalised frame positions -> (N, 2*levels) float32, computed in float64."""
    freqs = torch.tensor([b**i * math.pi for i in range(levels)], dtype=torch.float64)
    angles = t.to(torch.float64).reshape(-1, 1) * freqs
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(t.shape[0], 2 * levels).float()


class Nerv(nn.Module):
    """The NeRV network of one :class:`NervArch` record.

    ``forward(t)`` takes (N,) normalised positions ``k / T`` and returns (N, 3, h0*P, w0*P).
    """

    def __init__(self, record: NervArch) -> None:
        super().__init__()
        self.record = record
        r = record
        self.mlp = nn.Sequential(nn.Linear(2 * r.pe_l, r.mlp_hidden), nn.GELU(),
                                 nn.Linear(r.mlp_hidden, r.c1 * r.h0 * r.w0), nn.GELU())
        blocks, cin = [], r.c1
        for factor, cout in r.blocks:
            blocks += [nn.Conv2d(cin, cout * factor * factor, r.kernel, padding=r.kernel // 2),
                       nn.PixelShuffle(factor), nn.GELU()]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(cin, 3, r.head_kernel, padding=r.head_kernel // 2)

    @torch.no_grad()
    def init_weights_(self, generator: torch.Generator | None = None) -> "Nerv":
        """PyTorch's default (Kaiming-uniform) initialisation, drawn from ``generator`` (returns self)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)
        return self

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        r = self.record
        x = self.mlp(positional_encoding(t, r.pe_b, r.pe_l).to(self.head.weight.device))
        x = x.reshape(-1, r.c1, r.h0, r.w0)
        return self.head(self.blocks(x))
