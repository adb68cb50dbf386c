"""NeRV: an image-wise neural video representation (Chen et al., 2021), as in appendix A.3 of
Choi et al. (``shared/papers/003``) without the supermask parts.

    k --t = k / T--> PE(b, l): (sin(b^0 pi t), cos(b^0 pi t), ..., sin(b^(l-1) pi t), cos(...))
      --> Linear(2l, hidden) -> GELU -> Linear(hidden, c1*h0*w0) -> GELU -> reshape (c1, h0, w0)
      --> blocks: [Conv k x k to c*f^2 -> PixelShuffle(f) -> GELU] per (f, c)
      --> head: Conv to 3 (no activation: RGB in [-1, 1], clamped when rounding to 8 bits)
      --> (3, h0*P, w0*P), cropped to the frame's top-left H x W window

The factor list and base map are derived from the frame size by :func:`nerv_layout`; every
hyper-parameter is read from the wire record (:class:`~nfcodec.bitstream.NervArch`), never
inferred from tensor shapes.  The positional encoding is computed in float64 and rounded to
float32, so frame k's input is a function of (k, T, b, l) only.
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ..bitstream.headers import NERV_SLOTS, NervArch

__all__ = ["Nerv", "nerv_layout", "block_channels", "positional_encoding", "NERV_FACTORS"]

#: Upscale factors the layout search may use (the record accepts 1..8).
NERV_FACTORS = (5, 4, 3, 2)


def _target_cells(height: int, width: int) -> float:
    """Preferred number of cells of the base map: 144 (the paper's 16x9) for HD, fewer for small frames."""
    return min(144.0, max(12.0, height * width / 256.0))


def nerv_layout(height: int, width: int, max_blocks: int = NERV_SLOTS) -> tuple[int, int, tuple[int, ...]]:
    """Choose the base map ``h0 x w0`` and the upscale factors for an ``height x width`` frame.

    Candidates are non-increasing factor lists from {5, 4, 3, 2} of length 1..``max_blocks``,
    with ``h0 = ceil(H / P)``, ``w0 = ceil(W / P)`` (``P``: the product) and at most twice the
    preferred number of base cells (:func:`_target_cells`).  The winner has the least padding
    (in whole percent of the frame), then the base cell count closest to the preferred one
    (log scale), then the smallest largest factor, then the most blocks (gentle 2x steps,
    as in the paper).  720x1280 gives
    9x16 with (5, 2, 2, 2, 2), 1080x1920 9x16 with (5, 3, 2, 2, 2) (the paper's), 144x176 9x11
    with (2, 2, 2, 2).

    Returns:
        ``(h0, w0, factors)``.
    """
    target = _target_cells(height, width)
    best: tuple | None = None
    for n in range(1, max_blocks + 1):
        for factors in itertools.combinations_with_replacement(NERV_FACTORS, n):
            p = math.prod(factors)
            h0, w0 = -(-height // p), -(-width // p)
            cells = h0 * w0
            if cells > 2 * target and best is not None:
                continue
            padding = (h0 * p * w0 * p - height * width) / (height * width)
            key = (cells > 2 * target, round(100 * padding), abs(math.log(cells / target)), max(factors), -n)
            if best is None or key < best[0]:
                best = (key, (h0, w0, tuple(factors)))
    assert best is not None
    return best[1]


def block_channels(n_blocks: int, c2: int, min_channels: int) -> tuple[int, ...]:
    """Output channels per block: ``c2`` halved after each block, never below ``min_channels``."""
    return tuple(max(min_channels, c2 >> i) for i in range(n_blocks))


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
