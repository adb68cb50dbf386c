"""The latent-grid field (arch 2, format 2.4): entropy-coded latent grids, upsampled and
synthesized per pixel by a small MLP (the Cool-chic / C3 family, docs/grid.md).

Exact decoding program (``docs/format.md`` section 6.8)::

    q_l          latent level l, integer symbols (ceil(H/2^l) x ceil(W/2^l)), l = 0 .. L-1
    U_l = up(q_l)   bilinear x f = 2^l (align_corners=False, edge clamp), in integers:
                    output row i reads rows i0, i1 with weights (2f - r, r) / 2f, where
                    n = max(0, 2i + 1 - f), i0 = n // 2f, r = n mod 2f, i1 = min(i0 + 1, h_l - 1);
                    the same for columns; U_l is exact with 2l + 2 fractional bits
    X[:, l] = U_l * 4^(L-1-l)        all levels on 2L fractional bits
    X -> gelu layer(Q_L, Q_L+1) [-> gelu layer(Q_L+2, Q_L+3)] -> out8 layer -> RGB
    (head_kernel k > 1: the out8 layer is a zero-padded k x k convolution of the hidden maps)

The latent tensors are parameters 0 .. L-1 (their step index MUST be :data:`LATENT_STEP`, the
table's 1.0: a latent is its symbol); the synthesis weights follow in the usual (W, b) order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..bitstream import FormatError
from ..bitstream.headers import GridArch
from ..errors import ConfigError
from ..exact import tables as T
from ..exact.layers import Layer, QTensor, activation_max, make_layer
from ..exact.rng import Law
from . import ARCHS, ArchSpec, Costs, Growth

__all__ = ["GridProgram", "upsample_exact", "latent_symbols", "synthesis_program", "synthesis_shapes", "grid_costs", "planes_added", "LATENT_STEP", "MAX_LATENT"]

#: Step-table index of 1.0 (``STEP_TABLE[0]``): latent symbols are the latents.
LATENT_STEP = 0
#: Largest |latent symbol| a file may hold.
MAX_LATENT = 2**15


def _upsample_axis(q: np.ndarray, f: int, n_out: int, axis: int) -> np.ndarray:
    """Integer bilinear x f along ``axis`` (weights over 2f): the first ``n_out`` outputs."""
    n_in = q.shape[axis]
    i = np.arange(n_out, dtype=np.int64)
    num = np.maximum(0, 2 * i + 1 - f)
    i0 = num // (2 * f)
    r = num - i0 * (2 * f)
    i1 = np.minimum(i0 + 1, n_in - 1)
    shape = [1, 1]
    shape[axis] = n_out
    a = np.take(q, i0, axis=axis) * (2 * f - r).reshape(shape)
    a += np.take(q, i1, axis=axis) * r.reshape(shape)
    return a


def upsample_exact(q: np.ndarray, level: int, height: int, width: int) -> np.ndarray:
    """``(height, width)`` int64: level ``level``'s latents upsampled, with ``2 * level + 2`` fractional bits."""
    f = 1 << level
    q = np.asarray(q, dtype=np.int64)
    return _upsample_axis(_upsample_axis(q, f, height, 0), f, width, 1)


@dataclass(frozen=True)
class GridProgram:
    """The exact grid field of one stream: integer latent planes and the synthesis layers."""

    latents: tuple[np.ndarray, ...]
    layers: tuple[Layer, ...]
    height: int
    width: int

    #: Fractional bits one level's upsampling adds per axis step (rows and columns: 2).
    AXES = 2

    @property
    def frac(self) -> int:
        return self.AXES * len(self.latents)

    def plane(self, l: int, k: int) -> np.ndarray:
        """Level ``l``'s 2-D latent plane for frame ``k`` (an image: the plane itself)."""
        return self.latents[l]

    def inputs(self, k: int = 0) -> np.ndarray:
        """``(H*W, L)`` float64 integer synthesis inputs of frame ``k`` (``AXES * L`` fractional bits)."""
        L = len(self.latents)
        x = np.empty((self.height * self.width, L), dtype=np.float64)
        for l in range(L):
            u = upsample_exact(self.plane(l, k), l, self.height, self.width) << (self.AXES * (L - 1 - l))
            x[:, l] = u.reshape(-1)
        return x

    def render_pixels(self, ops: Any, k: int, pixels: Optional[np.ndarray] = None) -> np.ndarray:
        flat = self.render(ops, k).reshape(-1, 3)
        return flat if pixels is None else flat[pixels]

    def render(self, ops: Any, k: int) -> np.ndarray:
        x_all = self.inputs(k)
        head = self.layers[-1]
        if head.kernel:                       # hidden layers per pixel, then the k x k RGB convolution
            x = ops.asarray(x_all)
            for layer in self.layers[:-1]:
                x = ops.dense(layer, x)
            x = ops.asarray(ops.to_numpy(x).T.reshape(-1, self.height, self.width))
            return ops.conv(head, x, crop=(self.height, self.width))

        def tile(r0: int, r1: int) -> Any:
            x = ops.asarray(x_all[r0:r1])
            for layer in self.layers:
                x = ops.dense(layer, x)
            return x

        return ops.dense_rows(self.height * self.width, max(l.out_features for l in self.layers), tile,
                              3).reshape(self.height, self.width, 3)


def _record(m: Any, header: Any) -> GridArch:
    if header.media != 0:
        raise ConfigError("arch 'grid' encodes images; use --arch grid-video (or nerv, siren) for a video")
    levels = min(m.grid_levels, 1 + max(0, (max(header.height, header.width) - 1).bit_length()))
    return GridArch(height=header.height, width=header.width, levels=levels, hidden1=m.grid_hidden[0],
                    hidden2=m.grid_hidden[1] if len(m.grid_hidden) > 1 else 0, act=0, upsample=0,
                    head_kernel=m.grid_head_kernel)


def _check(r: GridArch, header: Any) -> None:
    if header.media != 0:
        raise FormatError(f"NHDR.arch=2 (grid) needs NHDR.media=0 (image), got {header.media}")
    if (r.height, r.width) != (header.height, header.width):
        raise FormatError(f"ARCH: grid of {r.width}x{r.height} for a {header.width}x{header.height} frame")
    if header.channels != 3:
        raise FormatError(f"the grid outputs 3 channels, NHDR.channels={header.channels}")


def _shapes(r: GridArch) -> list[tuple[int, ...]]:
    return synthesis_shapes(r, list(r.latent_sizes))


def synthesis_shapes(r: Any, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """``shapes`` (the latents') followed by the synthesis tensors' shapes of record ``r``."""
    dims = [r.levels, *r.hidden, 3]
    for a, b in zip(dims[:-1], dims[1:]):
        shapes += [(b, a), (b,)]
    if r.head_kernel > 1:
        shapes[-2] = (3, dims[-2], r.head_kernel, r.head_kernel)
    return shapes


def _costs(r: GridArch, header: Any) -> Costs:
    return grid_costs(r, 48)


def grid_costs(r: Any, bytes_per_latent: int, extra_macs: int = 0) -> Costs:
    """One frame of a latent grid: the synthesis and upsampling per pixel plus ``extra_macs``; the
    frame, the (pixels, L) inputs and two upsampling passes in int64, the row tiles, and
    ``bytes_per_latent`` for every latent of the stream (the entropy decoder's working arrays,
    about 48 bytes per latent in bitstream/entropy.py, and what the program holds)."""
    pixels = r.height * r.width
    dims = [r.levels, *r.hidden, 3]
    per_pixel = sum(a * b for a, b in zip(dims[:-1], dims[1:])) + 3 * dims[-2] * (r.head_kernel ** 2 - 1)
    latents = sum(math.prod(s) for s in r.latent_sizes)
    return Costs(macs=pixels * (per_pixel + 4 * r.levels) + extra_macs,
                 activations=pixels * (sum(r.hidden) + 3 + r.levels),
                 peak_bytes=3 * pixels + 8 * pixels * (r.levels + 2) + 8 * 6 * (1 << 17) * 8 + bytes_per_latent * latents)


def _program(r: GridArch, header: Any, tensors: Sequence[QTensor]) -> GridProgram:
    return synthesis_program(r, latent_symbols(r, tensors), tensors, GridProgram)


def latent_symbols(r: Any, tensors: Sequence[QTensor],
                   stored: Optional[Callable[[int, np.ndarray], np.ndarray]] = None) -> list[np.ndarray]:
    """The latents (the first ``r.levels`` tensors) as int64, checked: step 1.0, and |q| bounded
    after ``stored(level, symbols)`` turns what the file stores into the latents (default: as is)."""
    latents = []
    for l in range(r.levels):
        t = tensors[l]
        if t.step != LATENT_STEP and np.any(t.q):
            raise FormatError(f"grid latent level {l}: step index {t.step}, must be {LATENT_STEP} (1.0)")
        q = np.asarray(t.q, dtype=np.int64)
        if stored is not None:
            q = stored(l, q)
        if q.size and int(np.abs(q).max()) > MAX_LATENT:
            raise FormatError(f"grid latent level {l}: |symbol| {int(np.abs(q).max())} exceeds {MAX_LATENT}")
        latents.append(q)
    return latents


def synthesis_program(r: Any, latents: list[np.ndarray], tensors: Sequence[QTensor], cls: type) -> Any:
    """The exact program ``cls`` of latents ``latents`` and the synthesis tensors that follow them."""
    L = r.levels
    top = max((int(np.abs(q).max()) if q.size else 0) for q in latents)
    f_in, x_max = cls.AXES * L, max(1, top) << (cls.AXES * L)
    layers: list[Layer] = []
    n_hidden = len(r.hidden)
    for i in range(n_hidden):
        layers.append(make_layer("gelu", tensors[L + 2 * i], tensors[L + 2 * i + 1], f_in=f_in, x_max=x_max,
                                 where=f"grid synthesis layer {i}"))
        f_in, x_max = T.GELU_FRAC, activation_max("gelu")
    layers.append(make_layer("out8", tensors[L + 2 * n_hidden], tensors[L + 2 * n_hidden + 1], f_in=f_in,
                             x_max=x_max, kernel=r.head_kernel if r.head_kernel > 1 else 0,
                             where="grid output layer"))
    return cls(tuple(latents), tuple(layers), r.height, r.width)


# --------------------------------------------------------------------------- encoder side (torch)

def _build(r: GridArch) -> Any:
    from ..models.grid import GridField

    return GridField(r.height, r.width, r.levels, r.hidden, r.head_kernel)


def grid_sampler(r: Any, frames: np.ndarray, fit_cfg: Any, h: Any) -> Any:
    """The latent grids (images and videos) have no generic sampler: ConfigError."""
    raise ConfigError("the latent grids are fitted by their own rate-distortion trainer (nfcodec.grid_encoder)")


def grid_legacy_render(model: Any, r: Any, h: Any, k: int) -> np.ndarray:
    """The latent grids have no format 1.x files: FormatError."""
    raise FormatError("the latent grids have no format 1.x rendering")


def grid_laws(r: Any) -> list[Law]:
    """Only for completeness of the registry: latents start at zero, the synthesis as torch's Linear."""
    laws: list[Law] = [Law("uniform", Fraction(1)) for _ in range(r.levels)]
    dims = [r.levels, *r.hidden, 3]
    for a, _ in zip(dims[:-1], dims[1:]):
        laws += [Law("uniform", Fraction(1, a)), Law("uniform", Fraction(1, a))]
    return laws


def grid_encoder(frames: np.ndarray, media: int, fps: Any, config: Any, **kwargs: Any) -> Any:
    """The latent grids' encoder (:func:`nfcodec.grid_encoder.encode_grid`), imported lazily."""
    from ..grid_encoder import encode_grid

    return encode_grid(frames, media, fps, config, **kwargs)


# --------------------------------------------------------------------------- streamable levels

def _narrow(r: GridArch, width: int) -> GridArch:
    """Layout width-chunks: a level's "width" counts the latent planes it has, coarsest first. The
    record does not change (planes not yet received are zeros), so a cut file keeps its ARCH."""
    if not 1 <= width <= r.levels:
        raise FormatError(f"GROW: a grid level holds 1 to {r.levels} latent planes (ARCH.levels), not {width}")
    return r


def planes_added(levels: int, a: int, b: int) -> list[int]:
    """The latent levels that planes ``[a, b)`` (counted from the coarsest) are: ``levels-1-a`` down
    to ``levels-b``, coarse to fine (format.md 4b "Latent levels")."""
    return [levels - 1 - k for k in range(a, b)]


def _grow_slices(r: GridArch, a: int, b: int) -> list[tuple[int, tuple[slice, ...]]]:
    """What planes ``[a, b)`` add, whole: their latent levels coarse to fine, then with the first
    level the synthesis weights (format.md 4b)."""
    synthesis = [(t, ()) for t in range(r.levels, len(_shapes(r)))] if a == 0 else []
    return [(l, ()) for l in planes_added(r.levels, a, b)] + synthesis


ARCHS.register(ArchSpec(
    name="grid", record_cls=GridArch, make_record=_record, check=_check, param_shapes=_shapes,
    costs=_costs, program=_program, build=_build, sampler=grid_sampler, legacy_render=grid_legacy_render,
    init_laws=grid_laws, pixelwise=False, encoder=grid_encoder, representations=("dense",),
    layouts=("single", "width-chunks"), media=(0,),
    growth=Growth(_narrow, _grow_slices, whole=True, encode=grid_encoder, unit="planes"),
))
