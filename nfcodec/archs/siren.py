"""SIREN (arch 0): a coordinate MLP with sine activations, for images (row, col) and videos
(t, row, col).

Exact decoding program (format 2.0, ``docs/format.md`` section 6.3)::

    X0 = integer coordinates, 20 fractional bits      (t, row, col) of each pixel
    X_l = sine layer l (Q_2l, Q_2l+1, w0)             l = 0 .. depth-1, w0_first then w0_hidden
    RGB = out8 layer (Q_2depth, Q_2depth+1)           8-bit samples, row-major

Coordinate ``i`` of ``n`` cells is ``floor(((2i + 1 - n) * 2^21 + n) / (2n))``, the cell centre
``(2i + 1)/n - 1`` rounded (half up) to 20 fractional bits, computed in integers.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional, Sequence

import numpy as np

from ..bitstream import FormatError
from ..bitstream.headers import SirenArch
from ..exact import tables as T
from ..exact.layers import Layer, QTensor, activation_max, make_layer
from ..exact.rng import Law
from . import ARCHS, WIDE_LAYER, ArchSpec, Costs, Growth

__all__ = ["SirenProgram", "coordinates"]


def coordinates(index: np.ndarray, n: int) -> np.ndarray:
    """Fixed-point centres of cells ``index`` of ``n`` (int64, COORD_FRAC fractional bits)."""
    i = np.asarray(index, dtype=np.int64)
    return ((2 * i + 1 - n) * (1 << (T.COORD_FRAC + 1)) + n) // (2 * n)


@dataclass(frozen=True)
class SirenProgram:
    """The exact SIREN of one stream: its layers and coordinate grid."""

    layers: tuple[Layer, ...]
    frames: int
    height: int
    width: int
    video: bool

    def inputs(self, k: int, pixels: np.ndarray) -> np.ndarray:
        """``(n, in)`` float64 integer coordinates of frame ``k``'s pixels (row-major indices)."""
        rows, cols = np.divmod(pixels, self.width)
        parts = [coordinates(rows, self.height), coordinates(cols, self.width)]
        if self.video:
            parts.insert(0, np.full(pixels.shape, coordinates(np.array(k), self.frames), np.int64))
        return np.stack(parts, axis=-1).astype(np.float64)

    def render_pixels(self, ops: Any, k: int, pixels: Optional[np.ndarray] = None) -> np.ndarray:
        """``(n, 3)`` uint8 samples of frame ``k`` at the given row-major pixel indices (all by default)."""
        n = self.height * self.width if pixels is None else len(pixels)

        def tile(r0: int, r1: int) -> Any:
            idx = np.arange(r0, r1, dtype=np.int64) if pixels is None else np.asarray(pixels[r0:r1], np.int64)
            x = ops.asarray(self.inputs(k, idx))
            for layer in self.layers:
                x = ops.dense(layer, x)
            return x

        return ops.dense_rows(n, self.layers[0].out_features, tile, 3)

    def render(self, ops: Any, k: int) -> np.ndarray:
        return self.render_pixels(ops, k).reshape(self.height, self.width, 3)


def _record(m: Any, header: Any) -> SirenArch:
    return SirenArch(in_features=2 if header.media == 0 else 3, out_features=3, width=m.width, depth=m.depth,
                     w0_first=m.w0_first, w0_hidden=m.w0)


def _check(r: SirenArch, header: Any) -> None:
    need = 2 if header.media == 0 else 3
    if r.in_features != need:
        what = "an image needs (row, col)" if need == 2 else "a video needs (t, row, col)"
        raise FormatError(f"ARCH.in_features={r.in_features} but NHDR.media={header.media}: {what}")
    if r.out_features != header.channels:
        raise FormatError(f"ARCH.out_features={r.out_features} but NHDR.channels={header.channels}")


def _shapes(r: SirenArch) -> list[tuple[int, ...]]:
    dims = [r.in_features] + [r.width] * r.depth
    shapes: list[tuple[int, ...]] = []
    for a, b in zip(dims[:-1], dims[1:]):
        shapes += [(b, a), (b,)]
    return shapes + [(r.out_features, r.width), (r.out_features,)]


def _costs(r: SirenArch, header: Any) -> Costs:
    pixels = header.width * header.height
    per_pixel = r.in_features * r.width + (r.depth - 1) * r.width * r.width + r.width * r.out_features
    # the frame (uint8 RGB) plus a few float64 tiles of ~2**17 values per worker thread
    hidden = pixels * r.depth * r.width
    return Costs(macs=pixels * per_pixel, activations=hidden + pixels * r.out_features,
                 peak_bytes=3 * pixels + 8 * 6 * (1 << 17) * 8 + 16 * r.width * r.width,
                 wide_activations=hidden if r.width > WIDE_LAYER else 0)


def _program(r: SirenArch, header: Any, tensors: Sequence[QTensor]) -> SirenProgram:
    layers: list[Layer] = []
    f_in, x_max = T.COORD_FRAC, 1 << T.COORD_FRAC
    for l in range(r.depth):
        w0 = r.w0_first if l == 0 else r.w0_hidden
        layers.append(make_layer("sine", tensors[2 * l], tensors[2 * l + 1], f_in=f_in, x_max=x_max, w0=w0,
                                 where=f"SIREN layer {l}"))
        f_in, x_max = T.SIN_FRAC, activation_max("sine")
    layers.append(make_layer("out8", tensors[2 * r.depth], tensors[2 * r.depth + 1], f_in=f_in, x_max=x_max,
                             where="SIREN output layer"))
    return SirenProgram(tuple(layers), header.frames, header.height, header.width, header.media == 1)


# --------------------------------------------------------------------------- encoder side (torch)

def _build(r: SirenArch) -> Any:
    from ..models.siren import Siren

    return Siren(r.in_features, r.out_features, r.width, r.depth, r.w0_first, r.w0_hidden)


def _sampler(r: SirenArch, frames: np.ndarray, fit_cfg: Any, h: Any) -> Any:
    from ..render import image_coords, image_targets
    from ..samplers import PixelSampler, VideoPixelSampler

    if h.media == 0:
        return PixelSampler(image_coords(h.height, h.width), image_targets(frames[0]), fit_cfg.batch_pixels)
    return VideoPixelSampler(frames, fit_cfg.batch_pixels)


def _legacy_render(model: Any, r: SirenArch, h: Any, k: int) -> np.ndarray:
    from ..render import render_coords, render_image, video_frame_coords

    if h.media == 0:
        return render_image(model, h.height, h.width)
    return render_coords(model, video_frame_coords(k, h.frames, h.height, h.width), h.height, h.width)


#: The frozen RGB head's law is U(+-sqrt(6/fan_in)/HEAD_DIVISOR) (supermask only, see _laws).
HEAD_DIVISOR = 6


def _laws(r: SirenArch) -> list[Law]:
    """SIREN's initialisation: first layer U(+-1/fan_in), hidden layers U(+-sqrt(6/fan_in)/w0_hidden),
    biases U(+-1/sqrt(fan_in)) (as :meth:`nfcodec.models.siren.Siren.init_weights_`); but the RGB
    head U(+-sqrt(6/fan_in)/6).  SIREN's head init (``/w0``, 1/30) suits a head that trains: a
    *frozen* head that small caps the output near 0.06 whatever the masks do (13.7 dB on a 64x64
    Kodak crop at 2.8 bpp); /6 measured best of /2, /4, /6, /8, /30 on two crops
    (``benchmarks/supermask_siren_head.py``: 23.9 and 17.3 dB against 13.7 and 15.5)."""
    w0 = Fraction(r.w0_hidden)
    laws: list[Law] = []
    shapes = [s for s in _shapes(r) if len(s) == 2]
    for i, (out, fan) in enumerate(shapes):
        if i == 0:
            weight = Fraction(1, fan * fan)
        elif i == len(shapes) - 1:
            weight = Fraction(6, fan) / (HEAD_DIVISOR * HEAD_DIVISOR)
        else:
            weight = Fraction(6, fan) / (w0 * w0)
        laws += [Law("uniform", weight), Law("uniform", Fraction(1, fan))]
    return laws


def _narrow(r: SirenArch, width: int) -> SirenArch:
    return dataclasses.replace(r, width=width)


def _grow_slices(r: SirenArch, a: int, b: int) -> list[tuple[int, tuple[slice, ...]]]:
    """What hidden units ``[a, b)`` add (format.md 4b): in every hidden layer their rows (from all
    inputs of the layer at width ``b``: the first layer's coordinates, or units ``[0, b)``) and
    their biases, then their columns of the RGB head; the head's bias comes with the first level.
    Weights from units ``[a, b)`` into older units are never stored: structural zeros."""
    out: list[tuple[int, tuple[slice, ...]]] = []
    for l in range(r.depth):
        out += [(2 * l, (slice(a, b), slice(None) if l == 0 else slice(0, b))), (2 * l + 1, (slice(a, b),))]
    out.append((2 * r.depth, (slice(None), slice(a, b))))
    if a == 0:
        out.append((2 * r.depth + 1, (slice(None),)))
    return out


ARCHS.register(ArchSpec(
    name="siren", record_cls=SirenArch, make_record=_record, check=_check, param_shapes=_shapes,
    costs=_costs, program=_program, build=_build, sampler=_sampler, legacy_render=_legacy_render,
    init_laws=_laws, pixelwise=True, growth=Growth(_narrow, _grow_slices),
))
