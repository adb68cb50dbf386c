"""The video latent grid (arch 3, ``grid-video``, format 2.9): the grid of :mod:`.grid` over (t, y, x).

Exact decoding program of frame k of T (``docs/format.md`` section 6.8, "Video grids")::

    q_l          latent level l: ceil(T/2^l) planes of ceil(H/2^l) x ceil(W/2^l) integer symbols
    P_l(k)       the plane of frame k: with f = 2^l, n = max(0, 2k + 1 - f), j0 = n // 2f,
                 r = n mod 2f, j1 = min(j0 + 1, ceil(T/2^l) - 1):
                     P_l(k) = (2f - r) q_l[j0] + r q_l[j1]        (l + 1 fractional bits)
    U_l = up(P_l(k))   the image grid's integer bilinear x 2^l (3l + 3 fractional bits in all)
    X[:, l] = U_l * 8^(L-1-l)        all levels on 3L fractional bits
    X -> the image grid's synthesis (gelu layers, out8 layer) -> RGB of frame k

The temporal step is the image grid's row rule applied to the frame index, so the three axes
together are torch's ``trilinear`` interpolation (``align_corners=False``, edge clamp).  A frame
reads two planes of each level: decoding frame k alone costs one frame's synthesis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..bitstream import FormatError
from ..bitstream.headers import GridVideoArch
from ..errors import ConfigError
from ..exact.layers import QTensor
from . import ARCHS, ArchSpec, Costs
from .grid import (GridProgram, grid_costs, grid_encoder, grid_laws, grid_legacy_render, grid_sampler, latent_symbols,
                   synthesis_program, synthesis_shapes)

__all__ = ["GridVideoProgram", "temporal_taps", "stored_latents", "delta_planes"]


def temporal_taps(k: int, level: int, planes: int) -> tuple[int, int, int, int]:
    """``(j0, j1, w0, w1)``: the two planes frame ``k`` reads at ``level`` (of ``planes``) and
    their integer weights (sum ``2^(level+1)``)."""
    f = 1 << level
    n = max(0, 2 * k + 1 - f)
    j0, r = divmod(n, 2 * f)
    return j0, min(j0 + 1, planes - 1), 2 * f - r, r


@dataclass(frozen=True)
class GridVideoProgram(GridProgram):
    """The exact video grid: latent volumes (planes, rows, cols) and the image grid's synthesis."""

    AXES = 3

    def plane(self, l: int, k: int) -> np.ndarray:
        q = self.latents[l]
        j0, j1, w0, w1 = temporal_taps(k, l, q.shape[0])
        return q[j0] * w0 + q[j1] * w1


def _record(m: Any, header: Any) -> GridVideoArch:
    if header.media != 1:
        raise ConfigError("arch 'grid-video' encodes videos; use --arch grid for an image")
    if m.grid_head_kernel != 1:
        raise ConfigError("arch grid-video: grid_head_kernel must be 1 (the video grid trains a per-pixel RGB layer)")
    levels = min(m.grid_levels, 1 + max(0, (max(header.height, header.width) - 1).bit_length()))
    return GridVideoArch(height=header.height, width=header.width, levels=levels, hidden1=m.grid_hidden[0],
                         hidden2=m.grid_hidden[1] if len(m.grid_hidden) > 1 else 0, act=0, upsample=0,
                         head_kernel=m.grid_head_kernel, frames=header.frames)


def _check(r: GridVideoArch, header: Any) -> None:
    if header.media != 1:
        raise FormatError(f"NHDR.arch=3 (grid-video) needs NHDR.media=1 (video), got {header.media}")
    if (r.height, r.width, r.frames) != (header.height, header.width, header.frames):
        raise FormatError(f"ARCH: grid of {r.frames} frames of {r.width}x{r.height} for a stream of "
                          f"{header.frames} frames of {header.width}x{header.height}")
    if header.channels != 3:
        raise FormatError(f"the grid outputs 3 channels, NHDR.channels={header.channels}")


def _shapes(r: GridVideoArch) -> list[tuple[int, ...]]:
    return synthesis_shapes(r, list(r.latent_sizes))


def _costs(r: GridVideoArch, header: Any) -> Costs:
    # the image grid's frame plus the temporal mix (2 multiply-adds per latent of a plane); every
    # latent of the stream held in int64 beside the entropy decoder's working arrays
    return grid_costs(r, 56, extra_macs=2 * sum(h * w for _, h, w in r.latent_sizes))


def stored_latents(r: GridVideoArch, l: int, q: np.ndarray) -> np.ndarray:
    """Level ``l``'s latent volume from its stored symbols: with bit ``l`` of ``r.tdelta`` the file
    holds plane 0 and then each plane minus the one before it (the running sum along time undoes
    that; int64 cannot overflow: at most 2^24 planes of int32 symbols)."""
    return np.cumsum(q, axis=0) if (r.tdelta >> l) & 1 else q


def delta_planes(q: np.ndarray) -> np.ndarray:
    """What the file stores for a volume ``q`` of a ``tdelta`` level: plane 0, then the differences."""
    out = np.array(q, copy=True)
    out[1:] = q[1:] - q[:-1]
    return out


def _program(r: GridVideoArch, header: Any, tensors: Sequence[QTensor]) -> GridVideoProgram:
    latents = latent_symbols(r, tensors, lambda l, q: stored_latents(r, l, q))
    return synthesis_program(r, latents, tensors, GridVideoProgram)


# --------------------------------------------------------------------------- encoder side (torch)

def _build(r: GridVideoArch) -> Any:
    from ..models.grid import GridVideoField

    return GridVideoField(r.frames, r.height, r.width, r.levels, r.hidden)


ARCHS.register(ArchSpec(
    name="grid-video", record_cls=GridVideoArch, make_record=_record, check=_check, param_shapes=_shapes,
    costs=_costs, program=_program, build=_build, sampler=grid_sampler, legacy_render=grid_legacy_render,
    init_laws=grid_laws, pixelwise=False, encoder=grid_encoder, representations=("dense",), layouts=("single",),
    media=(1,),
))
