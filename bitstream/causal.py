"""The ``causal`` entropy model (wire id 5): latent planes coded autoregressively in wavefronts.

Every symbol of a plane is predicted from six already-decoded neighbours by an integer linear
predictor whose coefficients the file carries, and coded as the residual from that prediction
under one of ``B`` Laplace tables, picked by how much the neighbours disagree with it::

    NN                          n = (W, N, NW, NE, WW, NN), one outside the plane counts as 0
 NW N  NE                       P  = sum(c_i * n_i)                      (c_i: i8 of the file)
 WW W  s                        mu = (P + 32) >> 6                       (floor division by 64)
                                A  = 2 * (|W-mu| + |N-mu| + |NW-mu| + |NE-mu|) + |WW-mu| + |NN-mu|
                                bin = min(B - 1, bit_length(A));   r = s - mu

Decoding order: wavefronts ``t = x + 2y`` (t = 0, 1, ..., (w-1) + 2(h-1)); within one,
plane by plane, then by increasing ``y``.  Every neighbour of a position on wavefront ``t``
lies on an earlier one (W: t-1, WW: t-2, N: t-2, NE: t-1, NW: t-3, NN: t-4), so a decoder
computes a whole wavefront's contexts at once: ``w + 2h`` vectorized steps, not ``w * h``
serial ones.  Why this model exists and what it buys: docs/grid.md ("Context model").
Integer arithmetic throughout (int64; bounds in :func:`causal_context`), so the contexts are
the same on every machine; the tables are :func:`~.entropy.laplace_counts`, as for ``laplace``.

Wire (after the common record head)::

    uvarint c, uvarint h, uvarint w    planes; c * h * w MUST equal n
    6 x i8  c_W c_N c_NW c_NE c_WW c_NN
    svarint lo_r, uvarint K_r          residual range, 1 <= K_r <= CAUSAL_MAX_ALPHABET
    u8 B, B x u16 j_b                  1 <= B <= 16, j in [1, 4095]

One ``AnsCoder`` holds every residual (symbol ``r - lo_r``) in decoding order, each under
``laplace_counts(lo_r, K_r, j_bin)``; nothing when ``K_r == 1``.  The coder codes a wavefront
in pieces of at most ``CAUSAL_PIECE`` symbols, each one call of constriction's
``Categorical(perfect=False)`` family with one table row per symbol (encoder: the same pieces,
``encode_reverse``, last piece first).  Every decoded ``mu + r`` MUST lie in int32.
"""
from __future__ import annotations

import struct
from typing import NamedTuple, Optional

import numpy as np

from .entropy import (
    _I32,
    _LAPLACE_DENOM,
    EntropyModel,
    _AnsCoder,
    _ans_decode_with,
    _bin_histograms,
    _ans_decoder,
    _Categorical,
    _check_empty,
    _LaplaceCosts,
    _planes_shape,
    _read_range,
    _register,
    _span,
    laplace_counts,
)
from .errors import FormatError
from .fields import ByteReader, write_uvarint, zigzag

__all__ = ["CausalParams", "CausalModel", "causal_context", "causal_order", "CAUSAL_MAX_ALPHABET",
           "CAUSAL_SHIFT", "CAUSAL_NEIGHBOURS", "CAUSAL_MAX_WAVEFRONTS"]

#: Neighbour offsets (dy, dx) in wire order: W, N, NW, NE, WW, NN.
CAUSAL_NEIGHBOURS = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0))
#: Weight of each neighbour's |n - mu| in the activity A (W, N, NW, NE count twice).
_ACTIVITY_WEIGHTS = (2, 2, 2, 2, 1, 1)
#: Fixed-point shift of the predictor: mu = (P + 2**(SHIFT-1)) >> SHIFT.
CAUSAL_SHIFT = 6
CAUSAL_MAX_BINS = 16
#: Largest residual alphabet (each decoded symbol gets a table row of K_r floats).
CAUSAL_MAX_ALPHABET = 4096
#: Most symbols one constriction call codes: a piece's table is CAUSAL_PIECE * K_r float64s
#: at most 2**20 (8 MiB).
CAUSAL_PIECE_FLOATS = 2**20
#: Most wavefronts ``(w - 1) + 2(h - 1) + 1`` of a plane: each costs the decoder a Python step, so a
#: hostile 1 x n plane must not turn n symbols into n steps (a 16384 x 16384 plane has 49150).
CAUSAL_MAX_WAVEFRONTS = 2**17
_BIN_CHOICES = (1, 2, 4, 6, 8, 12, 16)
_POW2 = np.array([1 << k for k in range(63)], dtype=np.int64)
_PAD = 2


def causal_piece(size_r: int) -> int:
    """Symbols per constriction call for a residual alphabet of ``size_r``."""
    return max(1, CAUSAL_PIECE_FLOATS // max(1, size_r))


class CausalParams(NamedTuple):
    c: int
    h: int
    w: int
    coefs: tuple  # six ints in [-128, 127]
    lo_r: int
    size_r: int
    js: tuple  # one j per context bin (B = len(js))


def causal_order(h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(ys, xs)`` of each wavefront ``t = x + 2y`` of an ``h x w`` plane, ``y`` increasing."""
    out = []
    for t in range((w - 1) + 2 * (h - 1) + 1):
        y_lo, y_hi = max(0, -(-(t - w + 1) // 2)), min(h - 1, t // 2)
        ys = np.arange(y_lo, y_hi + 1, dtype=np.int64)
        out.append((ys, t - 2 * ys))
    return out


def _offsets(w: int) -> np.ndarray:
    """Flat offsets of the six neighbours in a plane padded by _PAD on top, left and right."""
    return np.array([dy * (w + 2 * _PAD) + dx for dy, dx in CAUSAL_NEIGHBOURS], dtype=np.int64)


def _neighbours_at(flat: np.ndarray, at: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``(m, 6)`` neighbours of the flat positions ``at`` of padded planes ``flat``."""
    return flat[at[:, None] + offsets[None, :]]


def _context_at(flat: np.ndarray, at: np.ndarray, offsets: np.ndarray, coefs: np.ndarray,
                n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, bin)`` at flat positions ``at`` of padded planes ``flat`` (int64)."""
    n = _neighbours_at(flat, at, offsets)
    mu = (n @ coefs + (1 << (CAUSAL_SHIFT - 1))) >> CAUSAL_SHIFT
    a = np.abs(n - mu[:, None]) @ np.asarray(_ACTIVITY_WEIGHTS, dtype=np.int64)
    bits = np.searchsorted(_POW2, a, side="right").astype(np.int64)
    return mu, np.minimum(bits, n_bins - 1)


def _padded(planes: np.ndarray) -> np.ndarray:
    c, h, w = planes.shape
    pad = np.zeros((c, h + _PAD, w + 2 * _PAD), dtype=np.int64)    # no row below is ever read
    pad[:, _PAD:, _PAD:_PAD + w] = planes
    return pad


def _flat_index(c: int, h: int, w: int) -> np.ndarray:
    """(c, h, w) -> flat index into the padded planes."""
    row = w + 2 * _PAD
    k = np.arange(c)[:, None, None] * (h + _PAD) * row
    return k + (np.arange(h)[None, :, None] + _PAD) * row + np.arange(w)[None, None, :] + _PAD


def causal_context(planes: np.ndarray, coefs, B: int) -> tuple[np.ndarray, np.ndarray]:
    """The causal model's ``(mu, bin)`` of every position, exactly as coder and decoder compute them.

    Pure integer numpy.  With int32 symbols and |c_i| <= 128, ``|P| < 6 * 2**7 * 2**31 < 2**41``
    and ``A < 10 * 2**36``, so int64 never overflows.

    Args:
        planes: ``(c, h, w)`` integer array (int32 values).
        coefs: Six integers (W, N, NW, NE, WW, NN), each in [-128, 127].
        B: Number of context bins, >= 1.

    Returns:
        ``(mu, bins)``, two ``(c, h, w)`` int64 arrays.

    Raises:
        ValueError: ``planes`` is not 3-D, ``B < 1`` or a coefficient is out of range.
    """
    planes = np.asarray(planes)
    coefs = tuple(int(v) for v in coefs)
    if planes.ndim != 3 or B < 1 or len(coefs) != 6 or not all(-128 <= v <= 127 for v in coefs):
        raise ValueError(f"causal_context needs (c, h, w) planes, six coefficients in [-128, 127] and B >= 1, "
                         f"got shape {planes.shape}, coefs {coefs}, B={B}")
    c, h, w = planes.shape
    flat = _padded(planes.astype(np.int64)).reshape(-1)
    at = _flat_index(c, h, w).reshape(-1)
    mu, bins = _context_at(flat, at, _offsets(w), np.asarray(coefs, dtype=np.int64), B)
    return mu.reshape(c, h, w), bins.reshape(c, h, w)


def _least_squares(planes: np.ndarray) -> tuple:
    """The predictor's coefficients (x 64, rounded, clamped) by least squares over the planes
    (encoder only; any coefficients decode)."""
    c, h, w = planes.shape
    n = _neighbours_at(_padded(planes).reshape(-1), _flat_index(c, h, w).reshape(-1), _offsets(w)).astype(np.float64)
    y = planes.reshape(-1).astype(np.float64)
    if not n.any():
        return (0,) * 6
    coef, *_ = np.linalg.lstsq(n, y, rcond=None)
    return tuple(int(v) for v in np.clip(np.rint(coef * (1 << CAUSAL_SHIFT)), -128, 127))


@_register
class CausalModel(EntropyModel):
    """Planes coded autoregressively: a linear prediction from six decoded neighbours, the
    residual under a laplace table chosen by the neighbours' activity (see the module doc).
    Needs the tensor's planes (:attr:`CodedTensor.shape`); without them :meth:`fit` returns None."""

    wire_id, name = 5, "causal"

    def fit(self, symbols: np.ndarray, shape: tuple = ()) -> Optional[CausalParams]:
        dims = _planes_shape(tuple(shape), symbols.size)
        if dims is None or (dims[2] - 1) + 2 * (dims[1] - 1) + 1 > CAUSAL_MAX_WAVEFRONTS:
            return None
        planes = symbols.astype(np.int64).reshape(dims)
        best = None
        for coefs in {_least_squares(planes), (0,) * 6}:
            mu, bits = causal_context(planes, coefs, 64)
            residuals = (planes - mu).reshape(-1)
            lo_r, size_r = _span(residuals)
            if size_r > CAUSAL_MAX_ALPHABET or lo_r < _I32.min or lo_r + size_r - 1 > _I32.max:
                continue
            bits = bits.reshape(-1)
            rows = int(bits.max()) + 1
            hists = np.bincount(bits * size_r + (residuals - lo_r), minlength=rows * size_r).reshape(rows, size_r)
            costs = _LaplaceCosts(lo_r, size_r)
            for n_bins in _BIN_CHOICES:
                fitted = [costs.best(hist) for hist in _bin_histograms(hists, n_bins)]
                p = CausalParams(*dims, coefs, lo_r, size_r, tuple(j for j, _ in fitted))
                estimate = sum(bits for _, bits in fitted) / 8 + len(self.write_params(p))
                if best is None or estimate < best[0]:
                    best = (estimate, p)
        return None if best is None else best[1]

    def write_params(self, params: CausalParams) -> bytes:
        p = params
        return b"".join([
            write_uvarint(p.c), write_uvarint(p.h), write_uvarint(p.w), struct.pack("<6b", *p.coefs),
            write_uvarint(zigzag(p.lo_r)), write_uvarint(p.size_r), bytes((len(p.js),)),
            struct.pack(f"<{len(p.js)}H", *p.js),
        ])

    def read_params(self, reader: ByteReader, n: int) -> CausalParams:
        c, h, w = reader.uvarint("c"), reader.uvarint("h"), reader.uvarint("w")
        if min(c, h, w) < 1 or c * h * w != n:  # Python ints: no overflow, nothing allocated
            raise FormatError(f"{reader.context} causal planes c={c} h={h} w={w}: "
                              f"c*h*w must equal n={n}, each >= 1")
        if (w - 1) + 2 * (h - 1) + 1 > CAUSAL_MAX_WAVEFRONTS:
            raise FormatError(f"{reader.context} causal planes h={h} w={w}: w + 2h - 2 >= {CAUSAL_MAX_WAVEFRONTS} "
                              f"wavefronts")
        coefs = struct.unpack("<6b", reader.take(6, "coefs"))
        lo_r, size_r = _read_range(reader, 1, "_r")
        if size_r > CAUSAL_MAX_ALPHABET:
            raise FormatError(f"{reader.context} causal K_r={size_r} outside [1, {CAUSAL_MAX_ALPHABET}]")
        n_bins = reader.u8("B")
        if not 1 <= n_bins <= CAUSAL_MAX_BINS:
            raise FormatError(f"{reader.context} causal B={n_bins} outside [1, {CAUSAL_MAX_BINS}]")
        js = []
        for b in range(n_bins):
            (j,) = struct.unpack("<H", reader.take(2, f"j_{b}"))
            if not 1 <= j < _LAPLACE_DENOM:
                raise FormatError(f"{reader.context} causal j_{b}={j} outside [1, {_LAPLACE_DENOM - 1}]")
            js.append(j)
        return CausalParams(c, h, w, tuple(coefs), lo_r, size_r, tuple(js))

    def probabilities(self, params: CausalParams) -> tuple[int, np.ndarray]:
        raise NotImplementedError("the causal model has one table per context bin; use encode_words/decode_symbols")

    @staticmethod
    def _tables(p: CausalParams) -> np.ndarray:
        return np.stack([laplace_counts(p.lo_r, p.size_r, j).astype(np.float64) for j in p.js])

    @staticmethod
    def _pieces(p: CausalParams):
        """``(flat positions in the padded planes, flat positions in the planes)`` of every
        coding call, in decoding order."""
        piece = causal_piece(p.size_r)
        plane = (p.h + _PAD) * (p.w + 2 * _PAD)
        row = p.w + 2 * _PAD
        for ys, xs in causal_order(p.h, p.w):
            at = ((ys + _PAD) * row + xs + _PAD)[None, :] + (np.arange(p.c, dtype=np.int64) * plane)[:, None]
            out = (ys * p.w + xs)[None, :] + (np.arange(p.c, dtype=np.int64) * (p.h * p.w))[:, None]
            at, out = at.reshape(-1), out.reshape(-1)
            for s in range(0, at.size, piece):
                yield at[s:s + piece], out[s:s + piece]

    def encode_words(self, params: CausalParams, symbols: np.ndarray) -> np.ndarray:
        p = params
        planes = np.asarray(symbols).astype(np.int64).reshape(p.c, p.h, p.w)
        mu, bins = causal_context(planes, p.coefs, len(p.js))
        residuals = (planes - mu).reshape(-1)
        if residuals.size and (residuals.min() < p.lo_r or residuals.max() >= p.lo_r + p.size_r):
            raise ValueError(f"causal params do not fit the tensor: residuals outside [{p.lo_r}, {p.lo_r + p.size_r})")
        coder = _AnsCoder()
        if p.size_r == 1:
            return coder.get_compressed()
        tables, bins = self._tables(p), bins.reshape(-1)
        family = _Categorical(perfect=False)
        for _, out in reversed(list(self._pieces(p))):
            coder.encode_reverse((residuals[out] - p.lo_r).astype(np.int32), family, tables[bins[out]])
        return coder.get_compressed()

    def decode_symbols(self, params: CausalParams, words: np.ndarray, n: int, *,
                       where: str = "tensor") -> np.ndarray:
        p = params
        if p.size_r == 1 and words.size:
            raise FormatError(f"{where}: n_words={words.size}, must be 0 when nothing is coded")
        coder = _ans_decoder(words, where)
        flat = _padded(np.zeros((p.c, p.h, p.w), dtype=np.int64)).reshape(-1)
        out_flat = np.zeros(p.c * p.h * p.w, dtype=np.int64)
        offsets, coefs = _offsets(p.w), np.asarray(p.coefs, dtype=np.int64)
        tables = self._tables(p) if p.size_r > 1 else None
        family = _Categorical(perfect=False)
        for at, out in self._pieces(p):
            mu, bins = _context_at(flat, at, offsets, coefs, len(p.js))
            if tables is None:
                r = np.full(at.size, p.lo_r, dtype=np.int64)
            else:
                r = _ans_decode_with(coder, where, family, tables[bins]).astype(np.int64) + p.lo_r
            s = mu + r
            if s.size and (s.min() < _I32.min or s.max() > _I32.max):
                raise FormatError(f"{where}: causal symbol mu + r outside the int32 range")
            flat[at] = s
            out_flat[out] = s
        _check_empty(coder, n, where)
        return out_flat

