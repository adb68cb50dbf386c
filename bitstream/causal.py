"""The ``causal`` (wire id 5) and ``causal4`` (wire id 6) entropy models: latent planes coded
autoregressively in wavefronts.

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

``causal4`` (format 2.6) keeps the prediction to the quarter: ``m = (P + 8) >> 4``,
``mu = m >> 2``, ``phi = m & 3``, the activity on ``|4 n - m|`` (``bin = min(B - 1,
bit_length(A >> 2))``), and the residual ``r = s - mu`` under one of four tables per bin, a
discrete Laplace centred on ``phi / 4`` with a decay of ``rho = 1 - j / 16384`` per quarter step
(:func:`quarter_laplace_counts`).  Same wire as ``causal``, ``j`` in [1, 16383].  On the latents
of a kodim01 grid file it codes 5.9% fewer bytes than ``causal`` (docs/grid.md).
"""
from __future__ import annotations

import struct
from typing import Any, NamedTuple, Optional

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

__all__ = ["CausalParams", "CausalModel", "Causal4Model", "causal_context", "causal4_context",
           "quarter_laplace_counts", "causal_order", "CAUSAL_MAX_ALPHABET",
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


def _offsets(w: int, neighbours: tuple = CAUSAL_NEIGHBOURS, pad: int = _PAD) -> np.ndarray:
    """Flat offsets of the neighbours in a plane padded by ``pad`` on top, left and right."""
    return np.array([dy * (w + 2 * pad) + dx for dy, dx in neighbours], dtype=np.int64)


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


def _padded(planes: np.ndarray, pad: int = _PAD) -> np.ndarray:
    c, h, w = planes.shape
    out = np.zeros((c, h + pad, w + 2 * pad), dtype=np.int64)    # no row below is ever read
    out[:, pad:, pad:pad + w] = planes
    return out


def _flat_index(c: int, h: int, w: int, pad: int = _PAD) -> np.ndarray:
    """(c, h, w) -> flat index into the padded planes."""
    row = w + 2 * pad
    k = np.arange(c)[:, None, None] * (h + pad) * row
    return k + (np.arange(h)[None, :, None] + pad) * row + np.arange(w)[None, None, :] + pad


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
    return _whole_planes("causal_context", _context_at, planes, coefs, B)


def _whole_planes(name: str, context_at: Any, planes: np.ndarray, coefs, B: int) -> tuple:
    """``context_at`` at every position of ``(c, h, w)`` planes, each output reshaped to them."""
    planes = np.asarray(planes)
    coefs = tuple(int(v) for v in coefs)
    if planes.ndim != 3 or B < 1 or len(coefs) != 6 or not all(-128 <= v <= 127 for v in coefs):
        raise ValueError(f"{name} needs (c, h, w) planes, six coefficients in [-128, 127] and B >= 1, "
                         f"got shape {planes.shape}, coefs {coefs}, B={B}")
    c, h, w = planes.shape
    flat = _padded(planes.astype(np.int64)).reshape(-1)
    at = _flat_index(c, h, w).reshape(-1)
    return tuple(v.reshape(c, h, w) for v in context_at(flat, at, _offsets(w), np.asarray(coefs, dtype=np.int64), B))


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
        best, P = None, self.phases
        for coefs in {_least_squares(planes), (0,) * 6}:
            mu, phase, bins = self._fit_context(planes, coefs)
            residuals = (planes - mu).reshape(-1)
            lo_r, size_r = _span(residuals)
            if size_r > CAUSAL_MAX_ALPHABET or lo_r < _I32.min or lo_r + size_r - 1 > _I32.max:
                continue
            bins = bins.reshape(-1)
            rows = int(bins.max()) + 1
            key = (bins * P + phase.reshape(-1)) * size_r + (residuals - lo_r)
            hists = np.bincount(key, minlength=rows * P * size_r).reshape(rows, P * size_r)
            costs = self._costs(lo_r, size_r)
            for n_bins in _BIN_CHOICES:
                fitted = [costs.best(h.reshape(P, size_r) if P > 1 else h) for h in _bin_histograms(hists, n_bins)]
                p = CausalParams(*dims, coefs, lo_r, size_r, tuple(j for j, _ in fitted))
                estimate = sum(bits for _, bits in fitted) / 8 + len(self.write_params(p))
                if best is None or estimate < best[0]:
                    best = (estimate, p)
        return None if best is None else best[1]

    #: Table rows per context bin (causal4: one per quarter phase).
    phases = 1

    @staticmethod
    def _fit_context(planes: np.ndarray, coefs: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mu, phase, bin)`` of every position with up to 64 bins (the fit merges them)."""
        mu, bins = causal_context(planes, coefs, 64)
        return mu, np.zeros_like(bins), bins

    @staticmethod
    def _costs(lo: int, size: int) -> Any:
        """Bits of a bin's histogram (``(phases, K)``, or ``(K,)`` for one phase) under the best j."""
        return _LaplaceCosts(lo, size)

    def write_params(self, params: CausalParams) -> bytes:
        p = params
        return b"".join([
            write_uvarint(p.c), write_uvarint(p.h), write_uvarint(p.w), struct.pack("<6b", *p.coefs),
            write_uvarint(zigzag(p.lo_r)), write_uvarint(p.size_r), bytes((len(p.js),)),
            struct.pack(f"<{len(p.js)}H", *p.js),
        ])

    #: Largest table index j of the wire (``laplace``'s tables: 4095).
    j_max = _LAPLACE_DENOM - 1

    def read_params(self, reader: ByteReader, n: int) -> CausalParams:
        c, h, w = self._read_planes(reader, n)
        coefs = struct.unpack("<6b", reader.take(6, "coefs"))
        lo_r, size_r = self._read_residual_range(reader)
        return CausalParams(c, h, w, tuple(coefs), lo_r, size_r, self._read_js(reader, reader.u8("B"), CAUSAL_MAX_BINS))

    def _read_planes(self, reader: ByteReader, n: int) -> tuple[int, int, int]:
        """``uvarint c, h, w``, checked against ``n`` and the wavefront bound before any allocation."""
        name = self.name
        c, h, w = reader.uvarint("c"), reader.uvarint("h"), reader.uvarint("w")
        if min(c, h, w) < 1 or c * h * w != n:  # Python ints: no overflow, nothing allocated
            raise FormatError(f"{reader.context} {name} planes c={c} h={h} w={w}: "
                              f"c*h*w must equal n={n}, each >= 1")
        if (w - 1) + 2 * (h - 1) + 1 > CAUSAL_MAX_WAVEFRONTS:
            raise FormatError(f"{reader.context} {name} planes h={h} w={w}: w + 2h - 2 >= {CAUSAL_MAX_WAVEFRONTS} "
                              f"wavefronts")
        return c, h, w

    def _read_residual_range(self, reader: ByteReader) -> tuple[int, int]:
        lo_r, size_r = _read_range(reader, 1, "_r")
        if size_r > CAUSAL_MAX_ALPHABET:
            raise FormatError(f"{reader.context} {self.name} K_r={size_r} outside [1, {CAUSAL_MAX_ALPHABET}]")
        return lo_r, size_r

    def _read_js(self, reader: ByteReader, n_bins: int, max_bins: int) -> tuple:
        """``n_bins`` (already read) in [1, max_bins], then that many ``u16 j`` in [1, j_max]."""
        if not 1 <= n_bins <= max_bins:
            raise FormatError(f"{reader.context} {self.name} B={n_bins} outside [1, {max_bins}]")
        js = []
        for b in range(n_bins):
            (j,) = struct.unpack("<H", reader.take(2, f"j_{b}"))
            if not 1 <= j <= self.j_max:
                raise FormatError(f"{reader.context} {self.name} j_{b}={j} outside [1, {self.j_max}]")
            js.append(j)
        return tuple(js)

    def probabilities(self, params: CausalParams) -> tuple[int, np.ndarray]:
        raise NotImplementedError("the causal model has one table per context bin; use encode_words/decode_symbols")

    @staticmethod
    def _tables(p: CausalParams) -> np.ndarray:
        """The float64 count rows the symbols are coded with (here one per bin)."""
        return np.stack([laplace_counts(p.lo_r, p.size_r, j).astype(np.float64) for j in p.js])

    @staticmethod
    def _rows_at(flat: np.ndarray, at: np.ndarray, offsets: np.ndarray, p: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, row of _tables)`` at flat positions of the padded planes (here the row is the bin)."""
        return _context_at(flat, at, offsets, np.asarray(p.coefs, dtype=np.int64), len(p.js))

    #: The neighbours the context reads and the zero padding they need (top, left and right).
    neighbours, pad = CAUSAL_NEIGHBOURS, _PAD

    def _pieces(self, p: Any):
        """``(flat positions in the padded planes, flat positions in the planes)`` of every
        coding call, in decoding order."""
        piece, pad = causal_piece(p.size_r), self.pad
        plane = (p.h + pad) * (p.w + 2 * pad)
        row = p.w + 2 * pad
        for ys, xs in causal_order(p.h, p.w):
            at = ((ys + pad) * row + xs + pad)[None, :] + (np.arange(p.c, dtype=np.int64) * plane)[:, None]
            out = (ys * p.w + xs)[None, :] + (np.arange(p.c, dtype=np.int64) * (p.h * p.w))[:, None]
            at, out = at.reshape(-1), out.reshape(-1)
            for s in range(0, at.size, piece):
                yield at[s:s + piece], out[s:s + piece]

    def encode_words(self, params: Any, symbols: np.ndarray) -> np.ndarray:
        p, pad = params, self.pad
        planes = np.asarray(symbols).astype(np.int64).reshape(p.c, p.h, p.w)
        mu, rows = self._rows_at(_padded(planes, pad).reshape(-1), _flat_index(p.c, p.h, p.w, pad).reshape(-1),
                                 _offsets(p.w, self.neighbours, pad), p)
        residuals = planes.reshape(-1) - mu
        if residuals.size and (residuals.min() < p.lo_r or residuals.max() >= p.lo_r + p.size_r):
            raise ValueError(f"{self.name} params do not fit the tensor: residuals outside "
                             f"[{p.lo_r}, {p.lo_r + p.size_r})")
        coder = _AnsCoder()
        if p.size_r == 1:
            return coder.get_compressed()
        tables = self._tables(p)
        family = _Categorical(perfect=False)
        for _, out in reversed(list(self._pieces(p))):
            coder.encode_reverse((residuals[out] - p.lo_r).astype(np.int32), family, tables[rows[out]])
        return coder.get_compressed()

    def decode_symbols(self, params: Any, words: np.ndarray, n: int, *,
                       where: str = "tensor") -> np.ndarray:
        p = params
        if p.size_r == 1 and words.size:
            raise FormatError(f"{where}: n_words={words.size}, must be 0 when nothing is coded")
        coder = _ans_decoder(words, where)
        flat = _padded(np.zeros((p.c, p.h, p.w), dtype=np.int64), self.pad).reshape(-1)
        out_flat = np.zeros(p.c * p.h * p.w, dtype=np.int64)
        offsets = _offsets(p.w, self.neighbours, self.pad)
        tables = self._tables(p) if p.size_r > 1 else None
        family = _Categorical(perfect=False)
        for at, out in self._pieces(p):
            mu, rows = self._rows_at(flat, at, offsets, p)
            if tables is None:
                r = np.full(at.size, p.lo_r, dtype=np.int64)
            else:
                r = _ans_decode_with(coder, where, family, tables[rows]).astype(np.int64) + p.lo_r
            s = mu + r
            if s.size and (s.min() < _I32.min or s.max() > _I32.max):
                raise FormatError(f"{where}: {self.name} symbol mu + r outside the int32 range")
            flat[at] = s
            out_flat[out] = s
        _check_empty(coder, n, where)
        return out_flat



# --------------------------------------------------------------------------- causal4 (wire id 6)
#: Denominator of the quarter-step decay of ``causal4``: rho = 1 - j / 16384, j in [1, 16383].
CAUSAL4_DENOM = 16384
#: Quarter-step powers kept (u_i for larger i is u at the last one) and the count scale.
_QUARTER_POWERS, _QUARTER_ONE = 2**19, 2.0**20


def quarter_laplace_counts(lo: int, size: int, j: int) -> np.ndarray:
    """The four tables of ``causal4`` for one ``j``: ``(4, K)`` int64 counts, row ``phi`` centred
    on ``phi / 4``: ``c[phi, k] = floor(u_|4(lo + k) - phi| * 2**20) + 1`` with ``u_0 = 1``,
    ``u_m = u_(m-1) * rho`` (one IEEE float64 rounding per product), ``rho = 1 - j / 16384``:
    a discrete Laplace whose decay per quarter step is rho (per unit ``rho**4``)."""
    rho = 1.0 - j / CAUSAL4_DENOM
    k4 = 4 * np.arange(lo, lo + size, dtype=np.int64)
    dist = np.abs(k4[None, :] - np.arange(4, dtype=np.int64)[:, None])
    top = min(int(dist.max()), _QUARTER_POWERS - 1)
    powers = np.multiply.accumulate(np.concatenate(([1.0], np.full(top, rho))))
    return np.floor(powers[np.minimum(dist, top)] * _QUARTER_ONE).astype(np.int64) + 1


def _context4_at(flat: np.ndarray, at: np.ndarray, offsets: np.ndarray, coefs: np.ndarray,
                 n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mu, phi, bin)`` of ``causal4`` at flat positions ``at`` (int64)."""
    n = _neighbours_at(flat, at, offsets)
    m = (n @ coefs + 8) >> 4                     # the prediction in quarters
    a = np.abs(4 * n - m[:, None]) @ np.asarray(_ACTIVITY_WEIGHTS, dtype=np.int64)
    bits = np.searchsorted(_POW2, a >> 2, side="right").astype(np.int64)
    return m >> 2, m & 3, np.minimum(bits, n_bins - 1)


def causal4_context(planes: np.ndarray, coefs, B: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``causal4``'s ``(mu, phi, bin)`` of every position of ``(c, h, w)`` planes (int64 each):
    ``m = (P + 8) >> 4`` (the prediction in quarters), ``mu = m >> 2``, ``phi = m & 3``,
    ``A = sum_k w_k |4 n_k - m|``, ``bin = min(B - 1, bit_length(A >> 2))``.  Bounds as for
    :func:`causal_context` (``|4 n - m| < 2**35``)."""
    return _whole_planes("causal4_context", _context4_at, planes, coefs, B)


class _QuarterCosts:
    """Bits of the (4, K) histograms of one bin under ``quarter_laplace_counts`` (cached by j)."""

    def __init__(self, lo: int, size: int) -> None:
        self.lo, self.size = lo, size
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._best: dict[bytes, tuple[int, float]] = {}

    def __call__(self, hists: np.ndarray, j: int) -> float:
        table = self._tables.get(j)
        if table is None:
            counts = quarter_laplace_counts(self.lo, self.size, j).astype(np.float64)
            table = self._tables[j] = (np.log2(counts), np.log2(counts.sum(axis=1)))
        log_counts, log_totals = table
        return float(hists.sum(axis=1) @ log_totals - (hists * log_counts).sum())

    def best(self, hists: np.ndarray) -> tuple[int, float]:
        """``(j, bits)`` of the cheapest j (remembered per histogram: the bin-count choices of the
        fit share every bin but the last)."""
        key = hists.tobytes()
        if key not in self._best:
            self._best[key] = self._search(hists)
        return self._best[key]

    def _search(self, hists: np.ndarray) -> tuple[int, float]:
        if self.size == 1 or not hists.any():
            return 1, 0.0
        costs: dict[int, float] = {}
        candidates = [*range(1, CAUSAL4_DENOM, 256), CAUSAL4_DENOM - 1]
        for step in (256, 32, 4, 1):
            if step != 256:
                centre = min(costs, key=costs.__getitem__)
                candidates = range(max(1, centre - 8 * step), min(CAUSAL4_DENOM - 1, centre + 8 * step) + 1, step)
            for j in candidates:
                if j not in costs:
                    costs[j] = self(hists, j)
        j = min(costs, key=lambda k: (costs[k], k))
        return j, costs[j]


@_register
class Causal4Model(CausalModel):
    """``causal`` with the prediction kept in quarters: the residual ``s - floor(P / 64)`` (to the
    quarter) is coded under a Laplace centred on the prediction's fractional quarter (one of four
    tables per context bin, :func:`quarter_laplace_counts`).  Same wire as ``causal`` except that
    each ``j_b`` is in [1, 16383] (a quarter-step decay).  Format 2.6."""

    wire_id, name = 6, "causal4"
    j_max = CAUSAL4_DENOM - 1

    phases = 4

    @staticmethod
    def _fit_context(planes: np.ndarray, coefs: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return causal4_context(planes, coefs, 64)

    @staticmethod
    def _costs(lo: int, size: int) -> Any:
        return _QuarterCosts(lo, size)

    @staticmethod
    def _tables(p: CausalParams) -> np.ndarray:
        """``(B * 4, K)`` float64 rows: row ``4 bin + phi``."""
        return np.concatenate([quarter_laplace_counts(p.lo_r, p.size_r, j).astype(np.float64) for j in p.js])

    @staticmethod
    def _rows_at(flat: np.ndarray, at: np.ndarray, offsets: np.ndarray, p: Any) -> tuple[np.ndarray, np.ndarray]:
        mu, phi, bins = _context4_at(flat, at, offsets, np.asarray(p.coefs, dtype=np.int64), len(p.js))
        return mu, 4 * bins + phi
