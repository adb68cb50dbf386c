"""A batch of SIRENs, one per tile (or per meta-learning task), trained together.

Parameters are stacked along a leading batch dimension in the SIREN's canonical order
(``nfcodec.archs.siren``: ``W_0, b_0, ..., W_head, b_head``, weights ``(out, in)``), so tile
``n``'s network is ``[p[n] for p in params]``.  :func:`forward` is functional (``params`` is any
list of tensors: the inner loop of meta-learning differentiates through it), one batched matmul
(``torch.baddbmm``) per layer: every tile steps at once, never one after another.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

__all__ = ["siren_shapes", "siren_init", "forward", "grid_coords", "TiledSiren"]


def siren_shapes(in_features: int, out_features: int, width: int, depth: int) -> list[tuple[int, ...]]:
    dims = [in_features] + [width] * depth
    shapes: list[tuple[int, ...]] = []
    for a, b in zip(dims[:-1], dims[1:]):
        shapes += [(b, a), (b,)]
    return shapes + [(out_features, width), (out_features,)]


def siren_init(n: int, shapes: Sequence[tuple[int, ...]], w0_hidden: float,
               generator: Optional[torch.Generator] = None) -> list[torch.Tensor]:
    """SIREN's initialisation (as :meth:`nfcodec.models.siren.Siren.init_weights_`) of ``n`` networks."""
    out: list[torch.Tensor] = []
    for i in range(0, len(shapes), 2):
        fan = shapes[i][1]
        bound = 1.0 / fan if i == 0 else math.sqrt(6.0 / fan) / w0_hidden
        w = torch.empty((n, *shapes[i])).uniform_(-bound, bound, generator=generator)
        b = torch.empty((n, *shapes[i + 1])).uniform_(-1 / math.sqrt(fan), 1 / math.sqrt(fan), generator=generator)
        out += [w, b]
    return out


def forward(params: Sequence[torch.Tensor], x: torch.Tensor, w0_first: float, w0_hidden: float) -> torch.Tensor:
    """``(n, P, out)`` outputs of the ``n`` networks at their coordinates ``x`` ``(n, P, in)``
    (``x`` may be expanded from one ``(1, P, in)`` grid)."""
    h = x
    last = len(params) - 2
    for i in range(0, len(params), 2):
        h = torch.baddbmm(params[i + 1].unsqueeze(1), h.expand(params[i].shape[0], -1, -1), params[i].transpose(1, 2))
        if i < last:
            h = torch.sin((w0_first if i == 0 else w0_hidden) * h)
    return h


def grid_coords(th: int, tw: int, frames: int = 0, k: int = 0) -> torch.Tensor:
    """``(th*tw, 2)`` (row, col) coordinates of a ``th x tw`` grid, as :func:`nfcodec.render.image_coords`."""
    from ..render import image_coords

    return image_coords(th, tw)


class TiledSiren(torch.nn.Module):
    """``n`` SIRENs of one architecture as stacked parameters (see the module docstring)."""

    def __init__(self, n: int, in_features: int, out_features: int, width: int, depth: int,
                 w0_first: float = 30.0, w0_hidden: float = 30.0,
                 init: Optional[Sequence[torch.Tensor]] = None, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.n, self.w0_first, self.w0_hidden = n, float(w0_first), float(w0_hidden)
        self.shapes = siren_shapes(in_features, out_features, width, depth)
        if init is None:
            tensors = siren_init(n, self.shapes, self.w0_hidden, generator)
        else:   # one network's tensors (a prior), copied to every tile
            tensors = [torch.as_tensor(t, dtype=torch.float32).reshape(s).expand(n, *s).clone()
                       for t, s in zip(init, self.shapes)]
        self.params = torch.nn.ParameterList(torch.nn.Parameter(t) for t in tensors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward(list(self.params), x, self.w0_first, self.w0_hidden)
