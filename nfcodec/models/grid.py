"""The latent-grid field (arch ``grid``), encoder side: latents, upsampling, synthesis, rate proxy.

    latents y_l (h_l x w_l), l = 0 .. L-1, h_l = ceil(H / 2^l)       (1 channel per level)
      --quantize (noise | straight-through | hard)-->  y^_l
      --bilinear x2^l (align_corners=False, edge clamp), crop to H x W-->  x (H*W, L)
      --synthesis MLP: Linear(L, h1) -> GELU [-> Linear(h1, h2) -> GELU] -> Linear(., 3)-->  RGB in [-1, 1]

The rate of the latents is estimated with the checkerboard context model the file uses
(:func:`bitstream.entropy.checkerboard_context`): anchors ((y + x) even) under a zero-mean
Laplace per level, the others under a Laplace centred on the mean of their four anchor
neighbours with a scale per (level, context bin).  The coder fits its own tables from the final
symbols; the learned scales here only shape training.  Design notes: docs/grid.md.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GridField", "latent_sizes", "quantize_latent", "laplace_bits", "checkerboard_bits", "N_BINS"]

#: Context bins of the training rate model (the coder may use fewer).
N_BINS = 8


def latent_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """``(h_l, w_l)`` of each level: ``ceil(H / 2^l) x ceil(W / 2^l)``."""
    return [(-(-height // (1 << l)), -(-width // (1 << l))) for l in range(levels)]


def quantize_latent(y: torch.Tensor, mode: str) -> torch.Tensor:
    """``noise``: y + U(-1/2, 1/2); ``ste``: round with a straight-through gradient; ``hard``: round."""
    if mode == "noise":
        return y + torch.rand_like(y) - 0.5
    if mode == "ste":
        return y + (torch.round(y) - y).detach()
    return torch.round(y)


def laplace_bits(r: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(r) of integer bins ``[r - 1/2, r + 1/2]`` under Laplace(0, exp(log_scale))."""
    b = torch.exp(log_scale).clamp_min(1e-3)
    a = r.abs()
    # P = F(a + 1/2) - F(a - 1/2), symmetric; both branches written without cancellation
    hi = torch.exp(-(a + 0.5) / b)
    lo = torch.where(a >= 0.5, torch.exp(-(a - 0.5).clamp_min(0) / b), 2 - torch.exp(-(0.5 - a).clamp_min(0) / b))
    p = 0.5 * (lo - hi)
    return -torch.log2(p.clamp_min(2.0**-24))


def _neighbours(y: torch.Tensor) -> torch.Tensor:
    """(4, h, w): N, S, W, E neighbours of every position, 0 outside."""
    p = F.pad(y[None, None], (1, 1, 1, 1))[0, 0]
    return torch.stack([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])


def checkerboard_bits(y: torch.Tensor, log_anchor: torch.Tensor, log_bins: torch.Tensor,
                      anchor: torch.Tensor) -> torch.Tensor:
    """Estimated bits of one quantized latent plane ``y`` (h, w) under the checkerboard model.

    ``anchor``: bool (h, w), (y + x) even.  Non-anchors: ``mu = floor((N+S+W+E+2)/4)``
    (straight-through), bin = bit length of ``sum |n - mu|`` (detached), capped at N_BINS - 1.
    """
    n = _neighbours(y)
    s4 = n.sum(0)
    mu = s4 / 4 + (torch.floor((s4 + 2) / 4) - s4 / 4).detach()
    with torch.no_grad():
        act = (n - mu).abs().sum(0)
        bins = torch.where(act < 1, torch.zeros_like(act), torch.floor(torch.log2(act.clamp_min(1))) + 1)
        bins = bins.clamp(max=log_bins.numel() - 1).long()
    bits_a = laplace_bits(y[anchor], log_anchor)
    free = ~anchor
    bits_n = laplace_bits((y - mu)[free], log_bins[bins[free]])
    return bits_a.sum() + bits_n.sum()


class GridField(nn.Module):
    """Latent grids + bilinear upsampling + a small synthesis MLP, for one H x W image.

    Args:
        height, width: the image size.
        levels: latent levels L (1:1 .. 1:2^(L-1)).
        hidden: synthesis hidden widths (one or two layers).
    """

    def __init__(self, height: int, width: int, levels: int = 7, hidden: Sequence[int] = (16,),
                 head_kernel: int = 1) -> None:
        super().__init__()
        self.height, self.width, self.levels, self.head_kernel = height, width, levels, head_kernel
        self.sizes = latent_sizes(height, width, levels)
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(h, w)) for h, w in self.sizes)
        dims = [levels, *hidden, 3]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-2], dims[1:-1]))
        self.layers.append(nn.Linear(dims[-2], 3) if head_kernel == 1 else nn.Conv2d(dims[-2], 3, head_kernel))
        self.log_anchor = nn.Parameter(torch.zeros(levels))
        self.log_bins = nn.Parameter(torch.zeros(levels, N_BINS))
        for l, (h, w) in enumerate(self.sizes):       # (y + x) even; buffers follow the module's device
            self.register_buffer(f"anchor{l}", (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == 0,
                                 persistent=False)

    # ------------------------------------------------------------------ parts
    def rate_parameters(self) -> list[nn.Parameter]:
        return [self.log_anchor, self.log_bins]

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """Weights and biases in the file's order (the k x k head's weight is (3, hidden, k, k))."""
        return [p for layer in self.layers for p in (layer.weight, layer.bias)]

    def upsample(self, planes: Sequence[torch.Tensor], crop: Optional[tuple[int, int, int, int]] = None) -> torch.Tensor:
        """(n, L) synthesis inputs of the pixels of ``crop`` = (y0, x0, h, w) (default: the image).

        ``planes`` are the (quantized) latents of the crop's latent window (see :meth:`window`)."""
        y0, x0, h, w = crop if crop is not None else (0, 0, self.height, self.width)
        cols = []
        for l, p in enumerate(planes):
            f = 1 << l
            a, b = self._window_start(y0, l), self._window_start(x0, l)
            if f == 1:
                u = p
            else:
                u = F.interpolate(p[None, None], size=(p.shape[0] * f, p.shape[1] * f), mode="bilinear",
                                  align_corners=False)[0, 0]
            r, c = y0 - a * f, x0 - b * f
            cols.append(u[r:r + h, c:c + w].reshape(-1))
        return torch.stack(cols, dim=1)

    @staticmethod
    def _window_start(start: int, level: int) -> int:
        return max(0, (start >> level) - 1)

    def window(self, l: int, crop: Optional[tuple[int, int, int, int]]) -> tuple[slice, slice]:
        """Rows and columns of level ``l``'s latents that the pixels of ``crop`` read (one latent of margin)."""
        if crop is None:
            return slice(None), slice(None)
        y0, x0, h, w = crop
        hl, wl = self.sizes[l]
        a, b = self._window_start(y0, l), self._window_start(x0, l)
        return slice(a, min(hl, ((y0 + h - 1) >> l) + 2)), slice(b, min(wl, ((x0 + w - 1) >> l) + 2))

    def synthesize(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.gelu(layer(x))
        return self.layers[-1](x)

    def _rate(self, mode: str, crop: Optional[tuple[int, int, int, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
        planes, bits = [], torch.zeros((), device=self.log_anchor.device)
        for l, y in enumerate(self.latents):
            rs, cs = self.window(l, crop)
            q = quantize_latent(y[rs, cs], mode)
            planes.append(q)
            # the rate of the window: its anchors/non-anchors keep their global parity
            anchor = getattr(self, f"anchor{l}")[rs, cs]
            bits = bits + checkerboard_bits(q, self.log_anchor[l], self.log_bins[l], anchor)
        return planes, bits

    def forward(self, mode: str = "noise", crop: Optional[tuple[int, int, int, int]] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rgb (n, 3) in [-1, 1] scale, estimated latent bits of the window)``."""
        if self.head_kernel == 1:
            planes, bits = self._rate(mode, crop)
            return self.synthesize(self.upsample(planes, crop)), bits
        # k x k head: hidden maps of the crop plus a margin of k // 2 (zeros only outside the image)
        p = self.head_kernel // 2
        y0, x0, h, w = crop if crop is not None else (0, 0, self.height, self.width)
        a, b = max(0, y0 - p), max(0, x0 - p)
        c, d = min(self.height, y0 + h + p), min(self.width, x0 + w + p)
        box = (a, b, c - a, d - b)
        planes, bits = self._rate(mode, box)
        x = self.upsample(planes, box)
        for layer in self.layers[:-1]:
            x = F.gelu(layer(x))
        x = x.T.reshape(1, -1, c - a, d - b)
        x = F.pad(x, (p - (x0 - b), p - (d - x0 - w), p - (y0 - a), p - (c - y0 - h)))
        return self.layers[-1](x)[0].reshape(3, -1).T, bits
