"""Invertible data transforms (the ``XFRM`` chunk, ``docs/format.md`` sections 3.6 and 4d; ``docs/transforms.md``).

The encoder may fit the network to a transformed copy of the frames, ``forward(frames)``; the
decoder renders the network as usual (8-bit samples) and returns ``inverse(rendered)``.  Both
maps are exact integer functions of the file (no floating point, no libm), so every machine
decodes the same pixels.  numpy only; this module never imports torch.

Transforms (wire id: name, the meaning of the u32 ``param``):

* ``0: identity`` -- ``param`` MUST be 0.
* ``1: permute`` -- ``param`` is a 32-bit seed.  A random permutation ``perm`` of the ``N = H*W``
  pixel positions of a frame (row-major index ``p = row * W + col``), the same for every frame:
  the keys ``u_p = raw(seed, PERMUTE_STREAM, N)[p]`` (Philox4x64-10, :func:`nfcodec.exact.rng.raw`)
  are sorted ascending, ties by the smaller position (a stable sort), and ``perm[p]`` is the
  position of the ``p``-th smallest key.  forward: ``fitted[p] = original[perm[p]]``;
  inverse: ``original[perm[p]] = fitted[p]``.  Exact (a bijection on positions).
* ``2: gamma`` -- ``param`` is the exponent in thousandths, ``GAMMA_RANGE`` = [250, 4000].
  With ``e = param / 1000`` (an exact rational), ``table_e[x] = round(255 * (x / 255) ** e)`` for
  ``x = 0..255``, rounding half up, decided with integers only.  forward uses ``table_e``
  (``e > 1`` darkens: the paper's "darker" transform ``z -> z^(1/gamma_paper)`` with
  ``gamma_paper = 1 / e``); inverse maps each value ``forward`` reaches to the rounded mean of
  its preimage and the others by ``table_(1/e)`` (:func:`gamma_tables`).  Per-sample;
  many-to-one where the forward slope is below 1, so ``inverse(forward(x))`` is not exactly
  ``x`` there (:func:`gamma_roundtrip_error`; ``docs/transforms.md`` gives the PSNR caps).

Integration: the encoder side is :mod:`nfcodec.xfrm_stream` (``nfcodec.encode(..., transform=...)``),
the decoder side ``nfcodec.decoder`` (``DecodedStream.render``); in short::

    rec = record_for("gamma", 2000)            # TransformRecord(transform=2, param=2000)
    target = apply_forward(frames, rec)         # (T, H, W, 3) or (H, W, 3) uint8 -> same shape
    ...fit, code; write Chunk(b"XFRM", rec.pack())...
    rec = TransformRecord.unpack(payload); check_record(rec)
    frame = apply_inverse(rendered_frame, rec, frame_index=k)

A decoder rendering only some pixels (random access) renders the network at
``render_positions(rec, H, W, wanted)`` and maps the values with ``inverse_values(values, rec)``.
"""
from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Mapping, Optional, Union

import numpy as np

from .bitstream.errors import FieldRangeError
from .bitstream.headers import TRANSFORMS as WIRE_NAMES
from .bitstream.headers import TransformRecord
from .exact.rng import raw

__all__ = ["Transform", "TRANSFORMS", "IDENTITY", "PERMUTE", "GAMMA", "GAMMA_RANGE", "PERMUTE_STREAM",
           "get_transform", "record_for", "check_record", "apply_forward", "apply_inverse",
           "render_positions", "inverse_values", "permutation", "inverse_permutation", "power_table",
           "gamma_tables", "gamma_roundtrip_error", "IDENTITY_RECORD"]

IDENTITY, PERMUTE, GAMMA = 0, 1, 2
#: Allowed ``param`` of ``gamma``: the exponent in thousandths (0.25 .. 4.0).
GAMMA_RANGE = (250, 4000)
#: The Philox stream index (key word 1) of the permutation keys: ASCII "XFRM" then the transform id,
#: so a permutation never shares a stream with the frozen weights of a supermask file (indices 0, 1, ...).
PERMUTE_STREAM = (0x5846524D << 32) | PERMUTE
#: Most pixels per frame a permutation is built for (NHDR's own frame-size limit).
MAX_PIXELS = 2**26

_U32 = 2**32 - 1


# --------------------------------------------------------------------------------------------- permute
@functools.lru_cache(maxsize=4)
def _perm_pair(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 <= seed <= _U32:
        raise FieldRangeError(f"XFRM.param={seed} outside [0, {_U32}] for transform permute")
    if not 1 <= n <= MAX_PIXELS:
        raise ValueError(f"permutation of {n} pixels outside [1, {MAX_PIXELS}]")
    keys = raw(seed, PERMUTE_STREAM, n)
    perm = np.argsort(keys, kind="stable").astype(np.int64)   # stable: equal keys keep position order
    inv = np.empty_like(perm)
    inv[perm] = np.arange(n, dtype=np.int64)
    perm.flags.writeable = False
    inv.flags.writeable = False
    return perm, inv


def permutation(seed: int, n: int) -> np.ndarray:
    """``perm`` (read-only int64, length ``n``): fitted position ``p`` holds original pixel ``perm[p]``."""
    return _perm_pair(int(seed), int(n))[0]


def inverse_permutation(seed: int, n: int) -> np.ndarray:
    """``inv = perm^-1``: original pixel ``q`` sits at fitted position ``inv[q]``."""
    return _perm_pair(int(seed), int(n))[1]


# ----------------------------------------------------------------------------------------------- gamma
@functools.lru_cache(maxsize=64)
def _power_table(num: int, den: int) -> bytes:
    # table[x] = #{k in 0..254 : 255 (x/255)^(a/b) >= k + 1/2}  (round half up), with a/b = num/den:
    # (x/255)^(a/b) >= (2k+1)/510  <=>  x^a * 510^b >= (2k+1)^b * 255^a   (all positive integers)
    a, b = num, den
    c = 255**a
    thresholds = [(2 * k + 1) ** b * c for k in range(255)]       # increasing in k
    s = 510**b
    return bytes(bisect.bisect_right(thresholds, x**a * s) for x in range(256))


def power_table(e: Fraction) -> np.ndarray:
    """The 256-entry uint8 table ``round_half_up(255 * (x / 255) ** e)``, computed exactly (``e > 0`` rational)."""
    e = Fraction(e)
    if e <= 0:
        raise ValueError(f"power_table exponent {e} must be positive")
    out = np.frombuffer(_power_table(e.numerator, e.denominator), dtype=np.uint8)
    return out   # read-only (a view of bytes)


def _check_gamma(param: int) -> None:
    lo, hi = GAMMA_RANGE
    if not lo <= param <= hi:
        raise FieldRangeError(f"XFRM.param={param} outside [{lo}, {hi}] for transform gamma "
                              "(exponent in thousandths)")


@functools.lru_cache(maxsize=16)
def _gamma_tables(param: int) -> tuple[np.ndarray, np.ndarray]:
    e = Fraction(param, 1000)
    fwd = power_table(e)
    inv = power_table(1 / e).copy()
    for y in range(256):
        xs = np.flatnonzero(fwd == y)
        if xs.size:   # the centre of the samples that forward maps to y, rounded half up
            s, c = int(xs.sum()), int(xs.size)
            inv[y] = (2 * s + c) // (2 * c)
    inv.flags.writeable = False
    return fwd, inv


def gamma_tables(param: int) -> tuple[np.ndarray, np.ndarray]:
    """(forward, inverse) read-only uint8 tables of ``gamma`` with exponent ``param / 1000``.

    forward ``F = table_e``.  inverse ``G[y]``: for ``y`` that ``F`` reaches, the mean of its
    preimage ``{x : F[x] = y}`` rounded half up (``(2 * sum + count) // (2 * count)``: the
    least-squares inverse of a perfect fit); for the others ``table_(1/e)[y]``.  Both monotone.
    """
    _check_gamma(param)
    return _gamma_tables(int(param))


def gamma_roundtrip_error(param: int) -> np.ndarray:
    """``inverse[forward[x]] - x`` (int16, 256 entries): the loss of a perfect fit through ``gamma``."""
    fwd, inv = gamma_tables(param)
    return inv[fwd].astype(np.int16) - np.arange(256, dtype=np.int16)


# -------------------------------------------------------------------------------------------- registry
Frames = np.ndarray


@dataclass(frozen=True)
class Transform:
    """One transform: its wire id and name, a parameter check and the two maps.

    ``forward(frames, param)`` and ``inverse(frames, param)`` take uint8 arrays whose last three
    axes are (H, W, 3) (any leading axes: frames) and return new uint8 arrays of the same shape.
    ``positions(param, H, W, pixels)`` maps original pixel indices (row-major) to the fitted
    positions to render; ``values(values, param)`` maps rendered samples to output samples.
    """

    wire_id: int
    name: str
    check: Callable[[int], None]
    forward: Callable[[Frames, int], Frames]
    inverse: Callable[[Frames, int], Frames]
    positions: Callable[[int, int, int, np.ndarray], np.ndarray]
    values: Callable[[np.ndarray, int], np.ndarray]
    doc: str = ""


def _as_frames(frames: np.ndarray) -> np.ndarray:
    a = np.asarray(frames)
    if a.dtype != np.uint8 or a.ndim < 3 or a.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (..., H, W, 3), got {a.dtype} {a.shape}")
    return a


def _check_identity(param: int) -> None:
    if param != 0:
        raise FieldRangeError(f"XFRM.param={param} outside [0, 0] for transform identity")


def _check_permute(param: int) -> None:
    if not 0 <= param <= _U32:
        raise FieldRangeError(f"XFRM.param={param} outside [0, {_U32}] for transform permute")


def _same(frames: Frames, param: int) -> Frames:
    return _as_frames(frames).copy()


def _same_positions(param: int, height: int, width: int, pixels: np.ndarray) -> np.ndarray:
    return np.asarray(pixels, dtype=np.int64).copy()


def _same_values(values: np.ndarray, param: int) -> np.ndarray:
    return np.asarray(values, dtype=np.uint8).copy()


def _permute_forward(frames: Frames, param: int) -> Frames:
    a = _as_frames(frames)
    h, w = a.shape[-3:-1]
    flat = a.reshape(a.shape[:-3] + (h * w, 3))
    return np.ascontiguousarray(flat[..., permutation(param, h * w), :]).reshape(a.shape)


def _permute_inverse(frames: Frames, param: int) -> Frames:
    a = _as_frames(frames)
    h, w = a.shape[-3:-1]
    flat = a.reshape(a.shape[:-3] + (h * w, 3))
    return np.ascontiguousarray(flat[..., inverse_permutation(param, h * w), :]).reshape(a.shape)


def _permute_positions(param: int, height: int, width: int, pixels: np.ndarray) -> np.ndarray:
    idx = np.asarray(pixels, dtype=np.int64)
    n = height * width
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"pixel index outside [0, {n})")
    return inverse_permutation(param, n)[idx]


def _gamma_forward(frames: Frames, param: int) -> Frames:
    return gamma_tables(param)[0][_as_frames(frames)]


def _gamma_inverse(frames: Frames, param: int) -> Frames:
    return gamma_tables(param)[1][_as_frames(frames)]


def _gamma_values(values: np.ndarray, param: int) -> np.ndarray:
    return gamma_tables(param)[1][np.asarray(values, dtype=np.uint8)]


TRANSFORMS: Mapping[int, Transform] = {
    IDENTITY: Transform(IDENTITY, "identity", _check_identity, _same, _same, _same_positions, _same_values,
                        "no transform (param 0)"),
    PERMUTE: Transform(PERMUTE, "permute", _check_permute, _permute_forward, _permute_inverse, _permute_positions,
                       _same_values, "seeded random permutation of the pixel positions of each frame (param: seed)"),
    GAMMA: Transform(GAMMA, "gamma", _check_gamma, _gamma_forward, _gamma_inverse, _same_positions, _gamma_values,
                     "per-sample power law x -> 255 (x/255)^e, e = param/1000 in [0.25, 4]; e > 1 darkens"),
}
assert {k: t.name for k, t in TRANSFORMS.items()} == dict(WIRE_NAMES), "transforms out of step with headers.TRANSFORMS"

#: The record of "no transform" (a writer omits XFRM instead of writing it).
IDENTITY_RECORD = TransformRecord(transform=IDENTITY, param=0)


def get_transform(key: Union[int, str]) -> Transform:
    """The transform of wire id ``key`` (int) or name ``key`` (str)."""
    if isinstance(key, str):
        for t in TRANSFORMS.values():
            if t.name == key:
                return t
        raise ValueError(f"unknown transform {key!r} (choose from {', '.join(t.name for t in TRANSFORMS.values())})")
    if key not in TRANSFORMS:
        raise FieldRangeError(f"XFRM.transform={key} unknown (known: {dict(WIRE_NAMES)})")
    return TRANSFORMS[key]


def check_record(record: TransformRecord) -> Transform:
    """Validate ``record.param`` for its transform (FieldRangeError, one line); returns the transform."""
    t = get_transform(int(record.transform))
    t.check(int(record.param))
    return t


def record_for(name: Union[str, int], param: int = 0) -> TransformRecord:
    """The ``XFRM`` record of transform ``name`` with ``param`` (checked)."""
    t = get_transform(name)
    t.check(int(param))
    return TransformRecord(transform=t.wire_id, param=int(param))


def _record(record: Optional[TransformRecord]) -> tuple[Transform, int]:
    if record is None:
        return TRANSFORMS[IDENTITY], 0
    return check_record(record), int(record.param)


def apply_forward(frames: np.ndarray, record: Optional[TransformRecord]) -> np.ndarray:
    """What the network is fitted to: uint8 (T, H, W, 3) or (H, W, 3) -> same shape (a new array)."""
    t, param = _record(record)
    return t.forward(frames, param)


def apply_inverse(frames: np.ndarray, record: Optional[TransformRecord], *, frame_index: Optional[int] = None) -> np.ndarray:
    """The output frames from rendered ones: uint8 (T, H, W, 3), or one (H, W, 3) frame.

    Every transform defined so far treats each frame alike, so one frame (``frame_index`` given
    or not) inverts on its own: random access in a video needs no other frame.
    """
    t, param = _record(record)
    if frame_index is not None and frame_index < 0:
        raise ValueError(f"frame_index={frame_index} must be >= 0")
    return t.inverse(frames, param)


def render_positions(record: Optional[TransformRecord], height: int, width: int, pixels: np.ndarray) -> np.ndarray:
    """The fitted-domain positions (row-major int64) to render for original pixels ``pixels``."""
    t, param = _record(record)
    return t.positions(param, int(height), int(width), np.asarray(pixels))


def inverse_values(values: np.ndarray, record: Optional[TransformRecord]) -> np.ndarray:
    """Output samples (uint8) from rendered samples (uint8) at those positions (any shape)."""
    t, param = _record(record)
    return t.values(values, param)
