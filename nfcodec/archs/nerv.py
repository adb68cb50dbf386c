"""NeRV (arch 1): frame index -> whole frame (Chen et al., 2021; appendix A.3 of Choi et al.).

Exact decoding program of frame k of T (format 2.0, ``docs/format.md`` section 6.4)::

    e   = positional encoding: for i < l, SIN[n_i], SIN[(n_i + 2^14) mod 2^16]   (sin, cos pairs)
          with n_i = floor(b^i * k * 2^16 / (2 T)) mod 2^16 in exact rational arithmetic
    h   = gelu layer (Q_0, Q_1)(e)                 dense, 15 -> 11 fractional bits
    z   = gelu layer (Q_2, Q_3)(h)                 dense; reshaped to c1 x h0 x w0 (row-major)
    x_i = pixel_shuffle(gelu conv_i(x_(i-1)), f_i)  k x k, zero padding k // 2
    RGB = out8 conv head(x_last), rows [0, H), columns [0, W) only (the crop)

``b`` is ``pe_b`` as the exact binary32 value of the record.  The float pipeline of the encoder
(:class:`nfcodec.models.nerv.Nerv`) computes the same network in floating point.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional, Sequence

import numpy as np

from ..bitstream import FormatError
from ..bitstream.headers import NERV_SLOTS, NervArch
from ..errors import ConfigError
from ..exact import tables as T
from ..exact.layers import Layer, QTensor, activation_max, make_layer
from ..exact.rng import Law
from . import ARCHS, ArchSpec, Costs

__all__ = ["NervProgram", "nerv_layout", "block_channels", "NERV_FACTORS", "MAX_NERV_MLP_WEIGHTS", "pe_indices"]

#: Upscale factors the layout search may use (the record accepts 1..8).
NERV_FACTORS = (5, 4, 3, 2)
#: Encoder limit on the MLP's output layer (mlp_hidden * c1 * h0 * w0 weights).
MAX_NERV_MLP_WEIGHTS = 2**24


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
    as in the paper).  720x1280 gives 9x16 with (5, 2, 2, 2, 2), 1080x1920 9x16 with
    (5, 3, 2, 2, 2) (the paper's), 144x176 9x11 with (2, 2, 2, 2).

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


def pe_indices(k: int, frames: int, b: float, levels: int) -> list[int]:
    """Sine-table bins ``n_i = floor(b^i * k * 2^16 / (2T)) mod 2^16`` in exact rational arithmetic."""
    base = Fraction(b)     # the binary32 value, exactly
    out = []
    power = Fraction(1)
    for _ in range(levels):
        value = power * k * T.SIN_SIZE / (2 * frames)
        out.append((value.numerator // value.denominator) % T.SIN_SIZE)
        power *= base
    return out


@dataclass(frozen=True)
class NervProgram:
    """The exact NeRV of one stream."""

    mlp: tuple[Layer, Layer]
    blocks: tuple[tuple[Layer, int], ...]      # (conv layer, pixel-shuffle factor)
    head: Layer
    record: NervArch
    frames: int
    height: int
    width: int

    def encoding(self, k: int) -> np.ndarray:
        """``(1, 2l)`` float64 integer positional encoding of frame ``k`` (15 fractional bits)."""
        sin = T.sine_table()
        idx = pe_indices(k, self.frames, self.record.pe_b, self.record.pe_l)
        pairs = [(sin[n], sin[(n + T.SIN_SIZE // 4) % T.SIN_SIZE]) for n in idx]
        return np.asarray(pairs, dtype=np.float64).reshape(1, -1)

    def render_pixels(self, ops: Any, k: int, pixels: Optional[np.ndarray] = None) -> np.ndarray:
        """``(n, 3)`` uint8 samples of frame ``k`` (the whole frame is rendered in any case)."""
        flat = self.render(ops, k).reshape(-1, 3)
        return flat if pixels is None else flat[pixels]

    def render(self, ops: Any, k: int) -> np.ndarray:
        r = self.record
        x = ops.dense(self.mlp[1], ops.dense(self.mlp[0], ops.asarray(self.encoding(k))))
        x = x.reshape(r.c1, r.h0, r.w0)
        kernels = [layer.kernel for layer, _ in self.blocks[1:]] + [self.head.kernel]
        for (layer, factor), nxt in zip(self.blocks, kernels):
            x = ops.conv(layer, x, factor, next_kernel=nxt)
        return ops.conv(self.head, x, crop=(self.height, self.width))


def _record(m: Any, header: Any) -> NervArch:
    if header.media == 0:
        raise ConfigError("arch 'nerv' encodes videos; use arch 'siren' for images")
    H, W = header.height, header.width
    if m.factors:
        factors = m.factors
        p = math.prod(factors)
        h0, w0 = -(-H // p), -(-W // p)
    else:
        h0, w0, factors = nerv_layout(H, W)
    p = math.prod(factors)
    if m.mlp_hidden * m.c1 * h0 * w0 > MAX_NERV_MLP_WEIGHTS or max(h0, w0) > 4096:
        raise ConfigError(f"{W}x{H} needs a NeRV base map of {w0}x{h0} with upscale factors "
                          f"{','.join(map(str, factors))} (product {p}): mlp_hidden*c1*h0*w0 = "
                          f"{m.mlp_hidden * m.c1 * h0 * w0} is too large for the model (limit {MAX_NERV_MLP_WEIGHTS}); "
                          "use more or larger factors")
    chans = block_channels(len(factors), m.c2, m.min_channels)
    slots = {}
    for i in range(NERV_SLOTS):
        slots[f"factor{i}"] = factors[i] if i < len(factors) else 0
        slots[f"channels{i}"] = chans[i] if i < len(factors) else 0
    return NervArch(pe_b=m.pe_b, pe_l=m.pe_l, mlp_hidden=m.mlp_hidden, c1=m.c1, h0=h0, w0=w0, kernel=m.kernel,
                    head_kernel=m.head_kernel, act=0, crop=0, **slots)


def _check(r: NervArch, header: Any) -> None:
    if header.media != 1:
        raise FormatError(f"NHDR.arch=1 (nerv) needs NHDR.media=1 (video), got {header.media}")
    ph, pw = r.padded_size
    if ph < header.height or pw < header.width:
        raise FormatError(f"ARCH: NeRV output {pw}x{ph} does not cover the {header.width}x{header.height} frame")
    if header.channels != 3:
        raise FormatError(f"NeRV outputs 3 channels, NHDR.channels={header.channels}")


def _shapes(r: NervArch) -> list[tuple[int, ...]]:
    c0 = r.c1 * r.h0 * r.w0
    shapes: list[tuple[int, ...]] = [(r.mlp_hidden, 2 * r.pe_l), (r.mlp_hidden,), (c0, r.mlp_hidden), (c0,)]
    cin = r.c1
    for f, c in r.blocks:
        shapes += [(c * f * f, cin, r.kernel, r.kernel), (c * f * f,)]
        cin = c
    return shapes + [(3, cin, r.head_kernel, r.head_kernel), (3,)]


def _costs(r: NervArch, header: Any) -> Costs:
    macs = 2 * r.pe_l * r.mlp_hidden + r.mlp_hidden * r.c1 * r.h0 * r.w0
    acts = r.mlp_hidden + r.c1 * r.h0 * r.w0
    peak = 8 * r.c1 * r.h0 * r.w0
    cin, h, w = r.c1, r.h0, r.w0
    band_bytes = 8 * 8 * (1 << 22)          # bands in flight (the torch backend's are the largest)
    for f, c in r.blocks:
        macs += (c * f * f) * (cin * r.kernel * r.kernel) * h * w
        acts += c * f * f * h * w
        # padded input and output maps (float64)
        peak = max(peak, 8 * (cin * (h + r.kernel) * (w + r.kernel) + c * f * f * (h + 1) * (w + 1) * 2)
                   + band_bytes)
        cin, h, w = c, h * f, w * f
    macs += 3 * cin * r.head_kernel ** 2 * header.height * header.width
    acts += 3 * header.height * header.width
    peak = max(peak, 8 * cin * (h + r.head_kernel) * (w + r.head_kernel) + 3 * header.height * header.width
               + band_bytes)
    return Costs(macs=macs, activations=acts, peak_bytes=peak)


def _program(r: NervArch, header: Any, tensors: Sequence[QTensor]) -> NervProgram:
    g_max = activation_max("gelu")
    mlp = (make_layer("gelu", tensors[0], tensors[1], f_in=T.SIN_FRAC, x_max=activation_max("sine"),
                      where="NeRV MLP layer 0"),
           make_layer("gelu", tensors[2], tensors[3], f_in=T.GELU_FRAC, x_max=g_max, where="NeRV MLP layer 1"))
    blocks = []
    for i, (f, _) in enumerate(r.blocks):
        layer = make_layer("gelu", tensors[4 + 2 * i], tensors[5 + 2 * i], f_in=T.GELU_FRAC, x_max=g_max,
                           kernel=r.kernel, where=f"NeRV block {i}")
        blocks.append((layer, f))
    n = 4 + 2 * len(r.blocks)
    head = make_layer("out8", tensors[n], tensors[n + 1], f_in=T.GELU_FRAC, x_max=g_max, kernel=r.head_kernel,
                      where="NeRV head")
    return NervProgram(mlp, tuple(blocks), head, r, header.frames, header.height, header.width)


# --------------------------------------------------------------------------- encoder side (torch)

def _build(r: NervArch) -> Any:
    from ..models.nerv import Nerv

    return Nerv(r)


def _sampler(r: NervArch, frames: np.ndarray, fit_cfg: Any, h: Any) -> Any:
    from ..samplers import FrameSampler

    return FrameSampler(frames, fit_cfg.batch_frames)


def _legacy_render(model: Any, r: NervArch, h: Any, k: int) -> np.ndarray:
    from ..render import render_nerv_frame

    return render_nerv_frame(model, k, h.frames, h.height, h.width)


def _laws(r: NervArch) -> list[Law]:
    """Kaiming normal weights (fan_in, gain sqrt 2: variance 2 / fan_in), as in the paper;
    biases U(+-1/sqrt(fan_in)) (PyTorch's default)."""
    laws: list[Law] = []
    for shape in _shapes(r)[::2]:
        fan = math.prod(shape[1:])
        laws += [Law("normal", Fraction(2, fan)), Law("uniform", Fraction(1, fan))]
    return laws


ARCHS.register(ArchSpec(
    name="nerv", record_cls=NervArch, make_record=_record, check=_check, param_shapes=_shapes,
    costs=_costs, program=_program, build=_build, sampler=_sampler, legacy_render=_legacy_render,
    init_laws=_laws, media=(1,),
))
