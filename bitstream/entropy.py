"""Entropy coding of quantized integer tensors (the content of TDAT and SCAL chunks).

Wire format (little-endian; uvarint is LEB128, svarint is zigzag + uvarint)::

    payload  := uvarint count, then count × tensor
    tensor   := uvarint index      position in the architecture's canonical parameter order
                u8      step       index into the quantization-step table (caller's meaning)
                uvarint n          number of symbols
                u8      model      entropy model wire id (below)
                ...     params     model parameters
                uvarint n_words    number of 32-bit ANS words
                n_words × u32      constriction AnsCoder words

Models (every probability table is built from *integers*, so the float64 array handed to
constriction, and therefore its fixed-point CDF, is identical on every IEEE-754 machine):

==  =========  =========================================  ===================================
id  name       params                                     integer counts over [lo, lo+K)
==  =========  =========================================  ===================================
0   const      svarint value                              K = 1: nothing is coded, n_words = 0
1   histogram  svarint lo, uvarint K, K × uvarint count   the counts (they MUST sum to n)
2   laplace    svarint lo, uvarint K, u16 j               c_k = floor(t_|k| · 2**20) + 1
3   gaussian   svarint lo, uvarint K, svarint mu, u32 j   c_k = floor(g_|k-mu| · 2**20) + 1
4   checker-   uvarint c, uvarint h, uvarint w,           anchors: laplace(lo_a, K_a, j_a);
    board      svarint lo_a, uvarint K_a, u16 j_a,        residuals of context bin b:
               svarint lo_r, uvarint K_r, u8 B,           laplace(lo_r, K_r, j_b)
               B × u16 j_b                                (spatial context, see below)
5   causal     uvarint c, h, w, 6 × i8 coefficients,      residuals of context bin b:
               svarint lo_r, uvarint K_r, u8 B, B × j_b   laplace(lo_r, K_r, j_b); module causal
6   causal4    as causal (j_b in [1, 16383])              residuals of bin b, quarter phase phi:
                                                          quarter(lo_r, K_r, j_b, phi); module causal
7   arm        uvarint c, h, w, u8 net [, H, F, weights], as causal4, bins and means from an
               svarint lo_r, uvarint K_r, u8 off, u8 B,   integer network; module arm
               B x j_b
==  =========  =========================================  ===================================

For ``laplace``, θ = 1 - j/4096 (j in [1, 4095], exact in float64), t_0 = 1.0 and
t_m = t_{m-1} · θ, each product rounded to nearest in IEEE float64 (no exp/log/pow, whose
last bits differ between math libraries).  For ``gaussian``, ρ = 1 - j/2**32 (j in
[1, 2**32 - 1], exact in float64), r_0 = ρ, r_m = r_{m-1} · (ρ · ρ), g_0 = 1.0 and
g_m = g_{m-1} · r_{m-1} (so g_m ≈ ρ**(m²) = exp(-m²/2σ²) with ρ = exp(-1/2σ²)), again one
IEEE float64 rounding per product, in that order.  For K >= 2 the symbols ``s - lo`` are coded with
``Categorical(counts as float64, perfect=False)`` and an ``AnsCoder``: the encoder calls
``encode_reverse`` on the whole tensor, the decoder ``AnsCoder(words).decode(model, n)``.

``checkerboard`` codes a stack of 2-D planes (latent grids) with a spatial context.  Rules:

* ``c * h * w`` MUST equal ``n`` and ``c, h, w >= 1`` (checked before anything is allocated);
  ``1 <= K_a, K_r <= MAX_ALPHABET``; ``[lo_a, lo_a + K_a - 1]`` and ``[lo_r, lo_r + K_r - 1]``
  MUST lie in the int32 range; ``1 <= B <= 16``; ``j_a`` and every ``j_b`` in [1, 4095] (also
  when the part they describe codes nothing).  The tables are ``laplace_counts(lo_a, K_a, j_a)``
  and ``laplace_counts(lo_r, K_r, j_b)``, exactly as for ``laplace``.
* The symbols, in C order, are the planes ``S[c][y][x]``.  *Anchors* are the positions with
  ``y + x`` even, *non-anchors* those with ``y + x`` odd.  The four neighbours ``N = (y-1, x)``,
  ``S = (y+1, x)``, ``W = (y, x-1)``, ``E = (y, x+1)`` of a non-anchor are anchors; one outside
  the plane counts as 0.  In integers (``//`` is floor division):
  ``mu = (N + S + W + E + 2) // 4``, ``A = |N-mu| + |S-mu| + |W-mu| + |E-mu|``,
  ``bin = min(B - 1, bit_length(A))`` (bit_length(0) = 0, 1 -> 1, 2..3 -> 2, 4..7 -> 3, ...).
  A non-anchor ``s`` is coded as the residual ``r = s - mu``, ``r`` in ``[lo_r, lo_r + K_r)``.
* One ``AnsCoder`` holds, in decoding order: every anchor of every plane in C order (symbol
  ``s - lo_a``, anchor table; nothing when ``K_a == 1``: every anchor is ``lo_a``), then for
  ``b = 0 .. B-1`` the residuals of the non-anchors whose bin is ``b``, in C order (symbol
  ``r - lo_r``, table ``j_b``; nothing when ``K_r == 1``: every residual is ``lo_r``).  The
  encoder calls ``encode_reverse`` per group in the reverse of this order.  The coder MUST be
  exactly empty afterwards, and every decoded ``mu + r`` MUST lie in the int32 range.
* An encoder only uses this model when it knows the tensor's planes (``CodedTensor.shape``
  of ``(h, w)`` or ``(c, h, w)``, ``h, w >= 2``, ``n >= 16``).
"""
from __future__ import annotations

import math
import operator
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Optional, Sequence

import constriction
import numpy as np

from .errors import FormatError
from .fields import ByteReader, write_uvarint, zigzag
from .registry import Registry

__all__ = [
    "MAX_ALPHABET",
    "CodedTensor",
    "EntropyModel",
    "ENTROPY_MODELS",
    "laplace_counts",
    "gaussian_counts",
    "checkerboard_context",
    "encode_tensors",
    "decode_tensors",
    "tensor_report",
]

# PyO3 module: submodules are reached by attribute, `import constriction.stream.model` fails.
_Categorical = constriction.stream.model.Categorical
_AnsCoder = constriction.stream.stack.AnsCoder

#: Largest alphabet K of the histogram and laplace models (bounds memory and side info).
MAX_ALPHABET = 2**16
_I32 = np.iinfo(np.int32)
_LAPLACE_ONE = 2.0**20  # count scale of the laplace model
_LAPLACE_DENOM = 4096  # theta = 1 - j / 4096
# t_m < 2**-20 for every m >= this many steps, even at the flattest theta (1 - 1/4096,
# where t_m ~ exp(-m/4096)), so such |k| all get count 1 and the table can stop there.
_LAPLACE_TABLE = 2**17


@dataclass(frozen=True, eq=False)
class CodedTensor:
    """A quantized tensor as the bitstream sees it.

    Attributes:
        index: Position in the architecture's canonical parameter order.
        step: Index into the quantization-step table, in [0, 255].
        symbols: The integer symbols, flattened to a read-only 1-D int32 array (a copy).
        shape: Encoder-side geometry hint (keyword; not stored by itself, ignored by ``==``):
            ``(h, w)`` or ``(c, h, w)`` lets the ``checkerboard`` model code the tensor as
            planes; ``()`` (the default) means unknown.  Decoded tensors have ``()``.

    Raises:
        ValueError: ``index`` or ``step`` out of range, or symbols outside int32.
        TypeError: ``symbols`` is not an integer array, or ``shape`` not a tuple of ints.
    """

    index: int
    step: int
    symbols: np.ndarray
    shape: tuple = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        if not 0 <= self.index < 2**64 or not 0 <= self.step <= 255:
            raise ValueError(f"CodedTensor index={self.index} / step={self.step} outside [0, 2**64) / [0, 255]")
        raw = np.asarray(self.symbols)
        if raw.dtype.kind not in "iu":
            raise TypeError(f"CodedTensor symbols must be integers, got dtype {raw.dtype}")
        if raw.size and (raw.min() < _I32.min or raw.max() > _I32.max):
            raise ValueError(f"CodedTensor {self.index}: symbols outside the int32 range")
        symbols = np.array(raw, dtype=np.int32).reshape(-1)  # always a private copy
        symbols.setflags(write=False)
        object.__setattr__(self, "symbols", symbols)
        try:
            shape = tuple(operator.index(d) for d in self.shape)
        except TypeError:
            raise TypeError(f"CodedTensor {self.index}: shape must be a tuple of ints, got {self.shape!r}") from None
        object.__setattr__(self, "shape", shape)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodedTensor):
            return NotImplemented
        return (self.index, self.step) == (other.index, other.step) and np.array_equal(self.symbols, other.symbols)

    __hash__ = None  # type: ignore[assignment]  # holds an array


# --------------------------------------------------------------------------- models


class EntropyModel(ABC):
    """A way to turn a tensor into integer counts, plus how to send them.

    Subclasses declare a stable ``wire_id`` (never reused) and a ``name``.
    """

    wire_id: ClassVar[int]
    name: ClassVar[str]

    @abstractmethod
    def fit(self, symbols: np.ndarray, shape: tuple = ()) -> Optional[Any]:
        """Choose parameters for a tensor.

        Args:
            symbols: 1-D int32 array.
            shape: The tensor's geometry hint (:attr:`CodedTensor.shape`); only models that
                code planes use it.

        Returns:
            The parameters, or None if the model cannot code this tensor.
        """

    @abstractmethod
    def write_params(self, params: Any) -> bytes:
        """Serialize parameters returned by :meth:`fit`."""

    @abstractmethod
    def read_params(self, reader: ByteReader, n: int) -> Any:
        """Parse and check parameters.

        Args:
            reader: Cursor positioned at the parameters.
            n: The tensor's symbol count.

        Returns:
            The parameters.

        Raises:
            FormatError: The parameters are malformed or out of range.
        """

    @abstractmethod
    def probabilities(self, params: Any) -> tuple[int, np.ndarray]:
        """The integer counts, as float64, over ``[lo, lo + K)``.

        Returns:
            ``(lo, counts)``; ``len(counts) == 1`` means nothing needs coding.

        Raises:
            NotImplementedError: The model has no single table (it overrides
                :meth:`encode_words` and :meth:`decode_symbols`).
        """

    def encode_words(self, params: Any, symbols: np.ndarray) -> np.ndarray:
        """The ANS words of a tensor (empty when nothing needs coding).

        The default codes every symbol with the one table of :meth:`probabilities`.

        Args:
            params: Parameters from :meth:`fit` (or :meth:`read_params`).
            symbols: 1-D integer array the parameters fit.

        Returns:
            uint32 array of words.
        """
        lo, probs = self.probabilities(params)
        if probs.size == 1 or symbols.size == 0:
            return np.zeros(0, dtype=np.uint32)
        coder = _AnsCoder()
        coder.encode_reverse((symbols.astype(np.int64) - lo).astype(np.int32), _Categorical(probs, perfect=False))
        return coder.get_compressed()

    def decode_symbols(self, params: Any, words: np.ndarray, n: int, *, where: str = "tensor") -> np.ndarray:
        """Decode ``n`` symbols from a record's words.

        Args:
            params: Parameters from :meth:`read_params` (checked against ``n``).
            words: The record's uint32 words.
            n: Number of symbols.
            where: The record, for messages.

        Returns:
            int64 array of ``n`` symbols, all in the int32 range.

        Raises:
            FormatError: Words the ANS decoder rejects, words left over, or words where
                nothing is coded.
        """
        lo, probs = self.probabilities(params)
        if probs.size == 1 or n == 0:
            if words.size:
                raise FormatError(f"{where}: n_words={words.size}, must be 0 when nothing is coded")
            return np.full(n, lo, dtype=np.int64)
        coder = _ans_decoder(words, where)
        offsets = _ans_decode(coder, probs, n, where)
        _check_empty(coder, n, where)
        return offsets.astype(np.int64) + lo


_TABLE: Registry[EntropyModel] = Registry("entropy model")
_MODELS = _TABLE.by_id_map
_register = _TABLE.register
#: Entropy models by name, in registration (= wire id) order.
ENTROPY_MODELS: Mapping[str, EntropyModel] = _TABLE.by_name_map


def _span(symbols: np.ndarray) -> tuple[int, int]:
    """``(lo, K)`` of a non-empty tensor."""
    lo = int(symbols.min())
    return lo, int(symbols.max()) - lo + 1


def _histogram(symbols: np.ndarray) -> Optional[tuple[int, int, np.ndarray]]:
    """``(lo, K, counts)`` of a tensor a parametric model can code (2 <= K <= MAX_ALPHABET), else None."""
    if symbols.size == 0:
        return None
    lo, size = _span(symbols)
    if not 2 <= size <= MAX_ALPHABET:
        return None
    return lo, size, np.bincount(symbols.astype(np.int64) - lo, minlength=size)


def _smallest_coded(model: "EntropyModel", symbols: np.ndarray, costs: dict[int, float], keep: int,
                    params: Callable[[int], Any]) -> Any:
    """Of the ``keep`` shape indices j with the lowest estimated cost, the one the real coder
    codes in the fewest bytes (ties: lowest j).  The estimate ignores 32-bit word granularity."""
    best = sorted(costs, key=costs.__getitem__)[:keep]
    return min((params(j) for j in best), key=lambda p: (_coded_bytes(model, p, symbols), p.j))


def _read_range(reader: ByteReader, min_size: int = 2, suffix: str = "") -> tuple[int, int]:
    """Read and check ``svarint lo, uvarint K`` (shared by histogram, laplace, gaussian and
    checkerboard, whose parts may have ``K = 1``)."""
    lo, size = reader.svarint("lo" + suffix), reader.uvarint("K" + suffix)
    if not min_size <= size <= MAX_ALPHABET:
        raise FormatError(f"{reader.context} K{suffix}={size} outside [{min_size}, {MAX_ALPHABET}]")
    if lo < _I32.min or lo + size - 1 > _I32.max:
        raise FormatError(f"{reader.context} symbol range [{lo}, {lo + size - 1}] outside int32")
    return lo, size


class ConstParams(NamedTuple):
    value: int


@_register
class ConstModel(EntropyModel):
    """Every symbol equals ``value`` (also the model of empty tensors): no words at all."""

    wire_id, name = 0, "const"

    def fit(self, symbols: np.ndarray, shape: tuple = ()) -> Optional[ConstParams]:
        if symbols.size == 0:
            return ConstParams(0)
        lo, size = _span(symbols)
        return ConstParams(lo) if size == 1 else None

    def write_params(self, params: ConstParams) -> bytes:
        return write_uvarint(zigzag(params.value))

    def read_params(self, reader: ByteReader, n: int) -> ConstParams:
        value = reader.svarint("value")
        if not _I32.min <= value <= _I32.max:
            raise FormatError(f"{reader.context} const value={value} outside int32")
        return ConstParams(value)

    def probabilities(self, params: ConstParams) -> tuple[int, np.ndarray]:
        return params.value, np.ones(1)


class HistogramParams(NamedTuple):
    lo: int
    counts: np.ndarray  # int64, K entries


@_register
class HistogramModel(EntropyModel):
    """Exact symbol counts: optimal words, K varints of side information."""

    wire_id, name = 1, "histogram"

    def fit(self, symbols: np.ndarray, shape: tuple = ()) -> Optional[HistogramParams]:
        if symbols.size == 0:
            return None
        lo, size = _span(symbols)
        if not 2 <= size <= MAX_ALPHABET:
            return None
        return HistogramParams(lo, np.bincount(symbols.astype(np.int64) - lo, minlength=size))

    def write_params(self, params: HistogramParams) -> bytes:
        counts = b"".join(write_uvarint(int(c)) for c in params.counts)
        return write_uvarint(zigzag(params.lo)) + write_uvarint(len(params.counts)) + counts

    def read_params(self, reader: ByteReader, n: int) -> HistogramParams:
        lo, size = _read_range(reader)
        if size > reader.remaining:  # each count takes at least one byte
            raise FormatError(f"{reader.context} K={size} counts, only {reader.remaining} bytes left")
        counts = [reader.uvarint("count") for _ in range(size)]
        # Exact counts sum to n (Python ints: no overflow); this also bounds every count, so
        # the float64 probabilities stay exact integers.
        if sum(counts) != n:
            raise FormatError(f"{reader.context} histogram counts sum to {sum(counts)}, expected n={n}")
        return HistogramParams(lo, np.array(counts, dtype=np.int64))

    def probabilities(self, params: HistogramParams) -> tuple[int, np.ndarray]:
        # Zero counts are fine: constriction (perfect=False) still gives every symbol of
        # the alphabet the smallest representable probability.
        return params.lo, params.counts.astype(np.float64)


class LaplaceParams(NamedTuple):
    lo: int
    size: int
    j: int  # theta = 1 - j / 4096


def laplace_counts(lo: int, size: int, j: int) -> np.ndarray:
    """Integer counts of the laplace model: ``floor(theta**|k| * 2**20) + 1``.

    ``theta**m`` is the m-fold IEEE float64 product ``((1 * theta) * theta) ...``;
    ``np.multiply.accumulate`` computes exactly that sequence, one rounding per step.

    Args:
        lo: First symbol.
        size: Alphabet size K.
        j: Shape index in [1, 4095].

    Returns:
        int64 array of K counts, each in [1, 2**20 + 1].
    """
    theta = 1.0 - j / _LAPLACE_DENOM
    mags = np.abs(np.arange(lo, lo + size, dtype=np.int64))
    top = min(int(mags.max()), _LAPLACE_TABLE - 1)
    powers = np.multiply.accumulate(np.concatenate(([1.0], np.full(top, theta))))
    return np.floor(powers[np.minimum(mags, top)] * _LAPLACE_ONE).astype(np.int64) + 1


def _cross_entropy(hist: np.ndarray, counts: np.ndarray) -> float:
    """Estimated bits to code a histogram with a count table (encoder only: float is fine)."""
    used = hist > 0
    return float(hist.sum() * math.log2(counts.sum()) - (hist[used] * np.log2(counts[used])).sum())


@_register
class LaplaceModel(EntropyModel):
    """Discrete Laplace centred on 0: 2-3 bytes of side information whatever K is."""

    wire_id, name = 2, "laplace"

    def fit(self, symbols: np.ndarray, shape: tuple = ()) -> Optional[LaplaceParams]:
        span = _histogram(symbols)
        if span is None:
            return None
        lo, size, hist = span
        costs = self._search(lambda j: _cross_entropy(hist, laplace_counts(lo, size, j)))
        return _smallest_coded(self, symbols, costs, 3, lambda j: LaplaceParams(lo, size, j))

    @staticmethod
    def _search(cost: Callable[[int], float]) -> dict[int, float]:
        """Coarse-to-fine search of j (the cost is close to convex in j); returns all costs."""
        costs: dict[int, float] = {}
        candidates: Sequence[int] = [*range(1, _LAPLACE_DENOM, 64), _LAPLACE_DENOM - 1]
        for step in (64, 8, 1):
            if step != 64:
                centre = min(costs, key=costs.__getitem__)
                candidates = range(max(1, centre - 8 * step), min(_LAPLACE_DENOM - 1, centre + 8 * step) + 1, step)
            for j in candidates:
                if j not in costs:
                    costs[j] = cost(j)
        return costs

    def write_params(self, params: LaplaceParams) -> bytes:
        return write_uvarint(zigzag(params.lo)) + write_uvarint(params.size) + struct.pack("<H", params.j)

    def read_params(self, reader: ByteReader, n: int) -> LaplaceParams:
        lo, size = _read_range(reader)
        (j,) = struct.unpack("<H", reader.take(2, "j"))
        if not 1 <= j < _LAPLACE_DENOM:
            raise FormatError(f"{reader.context} laplace j={j} outside [1, {_LAPLACE_DENOM - 1}]")
        return LaplaceParams(lo, size, j)

    def probabilities(self, params: LaplaceParams) -> tuple[int, np.ndarray]:
        return params.lo, laplace_counts(*params).astype(np.float64)


class GaussianParams(NamedTuple):
    lo: int
    size: int
    mu: int  # integer centre
    j: int   # rho = 1 - j / 2**32


_GAUSS_DENOM = 2**32


def gaussian_counts(lo: int, size: int, mu: int, j: int) -> np.ndarray:
    """Integer counts of the gaussian model: ``floor(g_|k - mu| * 2**20) + 1``.

    ``g_m`` is built only from IEEE float64 products (see the module docstring), so the table
    is identical on every machine.  Once ``g_m`` underflows below ``2**-20`` every larger
    distance gets count 1, so the product chain stops there.

    Args:
        lo: First symbol.
        size: Alphabet size K.
        mu: Integer centre of the bell.
        j: Width index in [1, 2**32 - 1] (rho = 1 - j / 2**32).

    Returns:
        int64 array of K counts, each in [1, 2**20 + 1].
    """
    rho = 1.0 - j / _GAUSS_DENOM
    dist = np.abs(np.arange(lo, lo + size, dtype=np.int64) - mu)
    top = int(dist.max())
    # g_m is decreasing; compute in blocks until it is below 2**-21 (then every count is 1).
    g = [1.0]
    r = rho
    rho2 = rho * rho
    while len(g) <= top and g[-1] >= 2.0**-21:
        block = min(4096, top + 1 - len(g))
        ratios = np.multiply.accumulate(np.concatenate(([r], np.full(block - 1, rho2))))
        vals = np.multiply.accumulate(np.concatenate(([g[-1]], ratios)))[1:]
        g.extend(vals.tolist())
        r = float(ratios[-1]) * rho2
    table = np.asarray(g[: top + 1], dtype=np.float64)
    out = np.ones(size, dtype=np.int64)
    near = dist < table.size
    out[near] = np.floor(table[dist[near]] * _LAPLACE_ONE).astype(np.int64) + 1
    return out


@_register
class GaussianModel(EntropyModel):
    """Discrete Gaussian around an integer centre: 6-9 bytes of side information whatever K is.

    Wins over ``laplace`` on tensors whose values are spread out (near-uniform or bell-shaped
    weight matrices), loses on peaked ones; the encoder keeps whichever codes smaller.
    """

    wire_id, name = 3, "gaussian"

    def fit(self, symbols: np.ndarray, shape: tuple = ()) -> Optional[GaussianParams]:
        span = _histogram(symbols)
        if span is None:
            return None
        lo, size, hist = span
        mu = int(np.rint(float(np.mean(symbols, dtype=np.float64))))
        var = max(float(np.mean((symbols.astype(np.float64) - mu) ** 2)), 0.05)

        def j_for(v: float) -> int:
            return int(min(_GAUSS_DENOM - 1, max(1, round(-math.expm1(-1.0 / (2.0 * v)) * _GAUSS_DENOM))))

        costs = {}
        for f in (0.5, 0.63, 0.8, 0.9, 1.0, 1.1, 1.25, 1.6, 2.0):
            j = j_for(var * f)
            if j not in costs:
                costs[j] = _cross_entropy(hist, gaussian_counts(lo, size, mu, j))
        return _smallest_coded(self, symbols, costs, 2, lambda j: GaussianParams(lo, size, mu, j))

    def write_params(self, params: GaussianParams) -> bytes:
        return (write_uvarint(zigzag(params.lo)) + write_uvarint(params.size) + write_uvarint(zigzag(params.mu))
                + struct.pack("<I", params.j))

    def read_params(self, reader: ByteReader, n: int) -> GaussianParams:
        lo, size = _read_range(reader)
        mu = reader.svarint("mu")
        if not lo <= mu < lo + size:
            raise FormatError(f"{reader.context} gaussian mu={mu} outside the alphabet [{lo}, {lo + size})")
        (j,) = struct.unpack("<I", reader.take(4, "j"))
        if not 1 <= j < _GAUSS_DENOM:
            raise FormatError(f"{reader.context} gaussian j={j} outside [1, {_GAUSS_DENOM - 1}]")
        return GaussianParams(lo, size, mu, j)

    def probabilities(self, params: GaussianParams) -> tuple[int, np.ndarray]:
        return params.lo, gaussian_counts(*params).astype(np.float64)


# --------------------------------------------------------------------------- checkerboard

#: Largest number of context bins of the checkerboard model.
CHECKERBOARD_MAX_BINS = 16
_CB_BIN_CHOICES = (1, 2, 4, 6, 8, 12)  # B values the encoder tries
_CB_EMPTY_J = 2048  # j of a table that codes nothing (any valid j would do)
# bit_length(A) = the number of powers of two <= A; A <= 4 * 2**33 for int32 symbols.
_POW2 = np.array([1 << k for k in range(63)], dtype=np.int64)


def _anchor_mask(h: int, w: int) -> np.ndarray:
    """``(h, w)`` bool array, True where ``y + x`` is even."""
    return (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0


def _nonanchor_context(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(anchor_mask, mu, bit_length(A))`` of ``(c, h, w)`` int64 planes; ``mu`` and the bit
    lengths are ``(c, m)`` arrays over the ``m`` non-anchors of a plane, in C order."""
    c, h, w = planes.shape
    anchor = _anchor_mask(h, w)
    pad = np.zeros((c, h + 2, w + 2), dtype=np.int64)  # a neighbour outside the plane is 0
    pad[:, 1:-1, 1:-1] = planes
    flat = pad.reshape(c, -1)
    rows, cols = np.nonzero(~anchor)
    at = (rows + 1) * (w + 2) + cols + 1  # non-anchor positions in the padded planes
    north, south = flat[:, at - (w + 2)], flat[:, at + (w + 2)]
    west, east = flat[:, at - 1], flat[:, at + 1]
    mu = (north + south + west + east + 2) >> 2  # == floor((sum4 + 2) / 4)
    spread = np.abs(north - mu)
    spread += np.abs(south - mu)
    spread += np.abs(west - mu)
    spread += np.abs(east - mu)
    return anchor, mu, np.searchsorted(_POW2, spread, side="right").astype(np.int64)


def checkerboard_context(planes: np.ndarray, B: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checkerboard model's context, exactly as coder and decoder compute it.

    Pure integer numpy, so an encoder can mirror it (e.g. in torch, for training) and get the
    same numbers.  Only the anchors of ``planes`` are read.

    Args:
        planes: ``(c, h, w)`` integer array (int32 values; computed in int64).
        B: Number of context bins, >= 1.

    Returns:
        ``(anchor_mask, mu, bins)``: ``anchor_mask`` is a ``(h, w)`` bool array, True where
        ``y + x`` is even; ``mu`` and ``bins`` are ``(c, h, w)`` int64 arrays holding, at every
        non-anchor, ``mu = (N + S + W + E + 2) // 4`` (neighbours outside the plane are 0) and
        ``bin = min(B - 1, bit_length(|N-mu| + |S-mu| + |W-mu| + |E-mu|))``, and 0 at anchors.

    Raises:
        ValueError: ``planes`` is not 3-D, or ``B < 1``.
    """
    planes = np.asarray(planes)
    if planes.ndim != 3 or B < 1:
        raise ValueError(f"checkerboard_context needs (c, h, w) planes and B >= 1, got shape {planes.shape}, B={B}")
    anchor, mu_na, bits = _nonanchor_context(planes.astype(np.int64))
    mu = np.zeros(planes.shape, dtype=np.int64)
    bins = np.zeros(planes.shape, dtype=np.int64)
    mu[:, ~anchor] = mu_na
    bins[:, ~anchor] = np.minimum(bits, B - 1)
    return anchor, mu, bins


class CheckerboardParams(NamedTuple):
    c: int
    h: int
    w: int
    lo_a: int
    size_a: int
    j_a: int
    lo_r: int
    size_r: int
    js: tuple  # one j per context bin (B = len(js))


class _LaplaceCosts:
    """Cross-entropy of histograms under the laplace tables of one range (tables cached by j)."""

    def __init__(self, lo: int, size: int) -> None:
        self.lo, self.size = lo, size
        self._tables: dict[int, tuple[np.ndarray, float]] = {}
        self._best: dict[bytes, tuple[int, float]] = {}

    def __call__(self, hist: np.ndarray, j: int) -> float:
        table = self._tables.get(j)
        if table is None:
            counts = laplace_counts(self.lo, self.size, j).astype(np.float64)
            table = self._tables[j] = (np.log2(counts), math.log2(counts.sum()))
        log_counts, log_total = table
        return float(hist.sum()) * log_total - float(np.dot(hist, log_counts))

    def best(self, hist: np.ndarray) -> tuple[int, float]:
        """``(j, bits)`` of the cheapest table (the laplace model's search); empty: ``_CB_EMPTY_J``.
        Remembered per histogram (a fit's bin-count choices share every bin but the last)."""
        if self.size == 1 or not hist.any():
            return _CB_EMPTY_J, 0.0
        key = hist.tobytes()
        if key not in self._best:
            costs = LaplaceModel._search(lambda j: self(hist, j))
            j = min(costs, key=lambda k: (costs[k], k))
            self._best[key] = (j, costs[j])
        return self._best[key]


def _bin_histograms(hists: np.ndarray, n_bins: int) -> list[np.ndarray]:
    """``n_bins`` residual histograms from one row per bit length: rows ``0 .. n_bins-2`` as they
    are (zeros where there are fewer rows), the last bin merging every row from ``n_bins - 1`` on."""
    rows, size = hists.shape
    merged = [hists[b] for b in range(min(n_bins - 1, rows))]
    merged += [np.zeros(size, dtype=np.int64)] * (n_bins - 1 - len(merged))
    merged.append(hists[n_bins - 1:].sum(axis=0) if n_bins - 1 < rows else np.zeros(size, dtype=np.int64))
    return merged


def _planes_shape(shape: tuple, n: int) -> Optional[tuple[int, int, int]]:
    """``(c, h, w)`` of a usable geometry hint, else None."""
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        return None
    c, h, w = (int(d) for d in shape)
    if c < 1 or h < 2 or w < 2 or c * h * w != n or n < 16:
        return None
    return c, h, w


@_register
class CheckerboardModel(EntropyModel):
    """Planes coded with a checkerboard spatial context (latent grids of an image codec).

    Anchors (``y + x`` even) are coded with one laplace table; every other symbol as the
    residual from the rounded mean of its four anchor neighbours, with a laplace table chosen
    by how much those neighbours disagree.  Needs the tensor's planes
    (:attr:`CodedTensor.shape`); without them :meth:`fit` returns None.
    """

    wire_id, name = 4, "checkerboard"

    def fit(self, symbols: np.ndarray, shape: tuple = ()) -> Optional[CheckerboardParams]:
        dims = _planes_shape(tuple(shape), symbols.size)
        if dims is None:
            return None
        planes = symbols.astype(np.int64).reshape(dims)
        anchor, mu, bits = _nonanchor_context(planes)
        anchors = planes[:, anchor].reshape(-1)
        residuals = (planes[:, ~anchor] - mu).reshape(-1)
        bits = bits.reshape(-1)
        lo_a, size_a = _span(anchors)
        lo_r, size_r = _span(residuals)
        if size_a > MAX_ALPHABET or size_r > MAX_ALPHABET or lo_r < _I32.min or lo_r + size_r - 1 > _I32.max:
            return None
        anchor_costs = _LaplaceCosts(lo_a, size_a)
        j_a, _ = anchor_costs.best(np.bincount(anchors - lo_a, minlength=size_a))
        # One residual histogram per bit_length(A); bin B-1 merges the rows from B-1 on.
        rows = int(bits.max()) + 1
        hists = np.bincount(bits * size_r + (residuals - lo_r), minlength=rows * size_r).reshape(rows, size_r)
        costs = _LaplaceCosts(lo_r, size_r)
        candidates = []
        for n_bins in _CB_BIN_CHOICES:
            js = tuple(costs.best(hist)[0] for hist in _bin_histograms(hists, n_bins))
            candidates.append(CheckerboardParams(*dims, lo_a, size_a, j_a, lo_r, size_r, js))

        def size(p: CheckerboardParams) -> int:
            words = self._encode_parts(p, anchors, residuals, np.minimum(bits, len(p.js) - 1))
            return len(self.write_params(p)) + len(_words_bytes(words))

        return min(candidates, key=lambda p: (size(p), len(p.js)))

    def write_params(self, params: CheckerboardParams) -> bytes:
        p = params
        return b"".join([
            write_uvarint(p.c), write_uvarint(p.h), write_uvarint(p.w),
            write_uvarint(zigzag(p.lo_a)), write_uvarint(p.size_a), struct.pack("<H", p.j_a),
            write_uvarint(zigzag(p.lo_r)), write_uvarint(p.size_r), bytes((len(p.js),)),
            struct.pack(f"<{len(p.js)}H", *p.js),
        ])

    @staticmethod
    def _read_j(reader: ByteReader, what: str) -> int:
        (j,) = struct.unpack("<H", reader.take(2, what))
        if not 1 <= j < _LAPLACE_DENOM:
            raise FormatError(f"{reader.context} checkerboard {what}={j} outside [1, {_LAPLACE_DENOM - 1}]")
        return j

    def read_params(self, reader: ByteReader, n: int) -> CheckerboardParams:
        c, h, w = reader.uvarint("c"), reader.uvarint("h"), reader.uvarint("w")
        if min(c, h, w) < 1 or c * h * w != n:  # Python ints: no overflow, nothing allocated
            raise FormatError(f"{reader.context} checkerboard planes c={c} h={h} w={w}: "
                              f"c*h*w must equal n={n}, each >= 1")
        lo_a, size_a = _read_range(reader, 1, "_a")
        j_a = self._read_j(reader, "j_a")
        lo_r, size_r = _read_range(reader, 1, "_r")
        n_bins = reader.u8("B")
        if not 1 <= n_bins <= CHECKERBOARD_MAX_BINS:
            raise FormatError(f"{reader.context} checkerboard B={n_bins} outside [1, {CHECKERBOARD_MAX_BINS}]")
        js = tuple(self._read_j(reader, f"j_{b}") for b in range(n_bins))
        return CheckerboardParams(c, h, w, lo_a, size_a, j_a, lo_r, size_r, js)

    def probabilities(self, params: CheckerboardParams) -> tuple[int, np.ndarray]:
        raise NotImplementedError("the checkerboard model has one table per context bin; "
                                  "use encode_words/decode_symbols")

    def encode_words(self, params: CheckerboardParams, symbols: np.ndarray) -> np.ndarray:
        p = params
        planes = np.asarray(symbols).astype(np.int64).reshape(p.c, p.h, p.w)
        anchor, mu, bits = _nonanchor_context(planes)
        residuals = (planes[:, ~anchor] - mu).reshape(-1)
        bins = np.minimum(bits, len(p.js) - 1).reshape(-1)
        return self._encode_parts(p, planes[:, anchor].reshape(-1), residuals, bins)

    @staticmethod
    def _encode_parts(p: CheckerboardParams, anchors: np.ndarray, residuals: np.ndarray,
                      bins: np.ndarray) -> np.ndarray:
        """Words of the anchors and the residuals (each in C order) with their bins."""
        for part, lo, size in ((anchors, p.lo_a, p.size_a), (residuals, p.lo_r, p.size_r)):
            if part.size and (part.min() < lo or part.max() >= lo + size):
                raise ValueError(f"checkerboard params do not fit the tensor: values outside [{lo}, {lo + size})")
        coder = _AnsCoder()
        if p.size_r > 1:  # LIFO: the last bin first, the anchors last
            for b in reversed(range(len(p.js))):
                part = residuals[bins == b]
                if part.size:
                    table = laplace_counts(p.lo_r, p.size_r, p.js[b]).astype(np.float64)
                    coder.encode_reverse((part - p.lo_r).astype(np.int32), _Categorical(table, perfect=False))
        if p.size_a > 1:
            table = laplace_counts(p.lo_a, p.size_a, p.j_a).astype(np.float64)
            coder.encode_reverse((anchors - p.lo_a).astype(np.int32), _Categorical(table, perfect=False))
        return coder.get_compressed()

    def decode_symbols(self, params: CheckerboardParams, words: np.ndarray, n: int, *,
                       where: str = "tensor") -> np.ndarray:
        p = params
        coder = _ans_decoder(words, where)
        planes = np.zeros((p.c, p.h, p.w), dtype=np.int64)
        anchor = _anchor_mask(p.h, p.w)
        n_anchors = p.c * int(anchor.sum())
        if p.size_a > 1:
            table = laplace_counts(p.lo_a, p.size_a, p.j_a).astype(np.float64)
            values = _ans_decode(coder, table, n_anchors, where).astype(np.int64) + p.lo_a
        else:
            values = np.full(n_anchors, p.lo_a, dtype=np.int64)
        planes[:, anchor] = values.reshape(p.c, -1)
        _, mu, bits = _nonanchor_context(planes)
        bins = np.minimum(bits, len(p.js) - 1).reshape(-1)
        residuals = np.full(bins.size, p.lo_r, dtype=np.int64)
        if p.size_r > 1:
            for b, j in enumerate(p.js):
                where_b = bins == b
                count = int(np.count_nonzero(where_b))
                if count:
                    table = laplace_counts(p.lo_r, p.size_r, j).astype(np.float64)
                    residuals[where_b] = _ans_decode(coder, table, count, where).astype(np.int64) + p.lo_r
        _check_empty(coder, n, where)
        values = residuals + mu.reshape(-1)
        if values.size and (values.min() < _I32.min or values.max() > _I32.max):
            raise FormatError(f"{where}: checkerboard symbol mu + r outside the int32 range")
        planes[:, ~anchor] = values.reshape(p.c, -1)
        return planes.reshape(-1)


# --------------------------------------------------------------------------- coding


def _ans_encode(model: EntropyModel, params: Any, symbols: np.ndarray) -> np.ndarray:
    """constriction words for a tensor (empty when nothing needs coding)."""
    return model.encode_words(params, symbols)


def _ans_decoder(words: np.ndarray, where: str) -> Any:
    """An AnsCoder over a record's words (constriction rejects some word sequences at once)."""
    try:
        return _AnsCoder(words)
    except (ValueError, KeyError, RuntimeError, OverflowError) as exc:  # constriction's errors
        raise FormatError(f"{where}: corrupt ANS words ({exc})") from exc


def _ans_decode(coder: Any, probs: np.ndarray, n: int, where: str) -> np.ndarray:
    """``n`` symbols of one categorical table, in [0, len(probs))."""
    return _ans_decode_with(coder, where, _Categorical(probs, perfect=False), n)


def _ans_decode_with(coder: Any, where: str, *model: Any) -> np.ndarray:
    """``coder.decode(*model)``, constriction's errors as FormatErrors (corrupt words)."""
    try:
        return coder.decode(*model)
    except (ValueError, KeyError, RuntimeError, OverflowError) as exc:  # constriction's errors
        raise FormatError(f"{where}: corrupt ANS words ({exc})") from exc


def _check_empty(coder: Any, n: int, where: str) -> None:
    # A valid stream leaves the coder exactly empty; anything else is corruption.
    if not coder.is_empty():
        raise FormatError(f"{where}: ANS words left over after {n} symbols")


def _words_bytes(words: np.ndarray) -> bytes:
    # Explicit little-endian: never depend on the host's byte order.
    return write_uvarint(len(words)) + np.asarray(words, dtype="<u4").tobytes()


def _coded_bytes(model: EntropyModel, params: Any, symbols: np.ndarray) -> int:
    """Bytes of params + words of a tensor under a model (the quantity models compete on)."""
    return len(model.write_params(params)) + len(_words_bytes(_ans_encode(model, params, symbols)))


def _candidates(tensor: CodedTensor, models: Sequence[EntropyModel],
                hints: Mapping[str, Any]) -> list[tuple[EntropyModel, Any, bytes]]:
    """``(model, params, words)`` of every model that can code the tensor.  A model with
    ``hinted = True`` (``arm``) is fitted with the caller's hint for it, or skipped without one."""
    out = []
    for model in models:
        if getattr(model, "hinted", False):
            if model.name not in hints:
                continue
            params = model.fit(tensor.symbols, tensor.shape, hint=hints[model.name])
        else:
            params = model.fit(tensor.symbols, tensor.shape) if tensor.shape else model.fit(tensor.symbols)
        if params is not None:
            out.append((model, params, _words_bytes(_ans_encode(model, params, tensor.symbols))))
    return out


def _record_bytes(tensor: CodedTensor, model: EntropyModel, params: Any, words: bytes) -> bytes:
    head = write_uvarint(tensor.index) + bytes((tensor.step,)) + write_uvarint(tensor.symbols.size)
    return head + bytes((model.wire_id,)) + model.write_params(params) + words


def encode_tensors(tensors: Sequence[CodedTensor], *, models: Optional[Sequence[str]] = None,
                   hints: Optional[Mapping[str, Any]] = None) -> bytes:
    """Entropy-code tensors into a TDAT/SCAL payload.

    Args:
        tensors: The tensors, in the order they are to be stored.  A tensor's ``shape`` hint
            makes the ``checkerboard`` model a candidate (it is never chosen without one, so
            hint-less tensors code exactly as before that model existed).
        models: Names of the models to choose from (default: all).  ``const`` is always
            allowed: it is the only model that can code a one-valued tensor (constriction
            needs K >= 2), so restricting to e.g. ``["histogram"]`` stays usable on real
            networks.
        hints: Per model name, what the encoder supplies to a model that cannot fit itself
            (``{"arm": ArmNet}``: the context network; without it ``arm`` is never chosen).

    Returns:
        The payload: ``uvarint count`` and one record per tensor.

    Raises:
        ValueError: An unknown model name, or a tensor that spans more than
            ``MAX_ALPHABET`` values.
    """
    names = list(ENTROPY_MODELS) if models is None else ["const", *models]
    unknown = set(names) - set(ENTROPY_MODELS)
    if unknown:
        raise ValueError(f"unknown entropy models {sorted(unknown)}; known: {list(ENTROPY_MODELS)}")
    chosen = [m for m in ENTROPY_MODELS.values() if m.name in names]
    hints = dict(hints or {})
    cands = [_candidates(t, chosen, hints) for t in tensors]
    for t, c in zip(tensors, cands):
        if not c:
            lo, size = _span(t.symbols)
            raise ValueError(f"tensor {t.index}: no entropy model can code K={size} symbols from {lo}")

    def size(m: EntropyModel, p: Any, w: bytes, shared_free: bool) -> int:
        return len(m.write_params(m.reused(p) if shared_free and getattr(m, "hinted", False) else p)) + len(w)

    def payload(allow_hinted: bool) -> bytes:
        """Each tensor with its smallest model (ties: lowest id); a hinted model's shared part
        (arm: the network) is counted once: stored by the first record that uses it."""
        stored, out = set(), [write_uvarint(len(tensors))]
        for t, c in zip(tensors, cands):
            usable = [x for x in c if allow_hinted or not getattr(x[0], "hinted", False)]
            m, p, w = min(usable, key=lambda x: (size(*x, shared_free=True), x[0].wire_id))
            if getattr(m, "hinted", False):
                p = m.reused(p) if m.name in stored else p
                stored.add(m.name)
            out.append(_record_bytes(t, m, p, w))
        return b"".join(out)

    hinted = [any(getattr(m, "hinted", False) for m, _, _ in c) for c in cands]
    if not all(len(c) > h for c, h in zip(cands, hinted)):   # some tensor only a hinted model codes
        return payload(True)
    plain = payload(False)
    if not any(hinted):
        return plain
    with_hinted = payload(True)   # kept only when the shared side information pays for itself
    return with_hinted if len(with_hinted) < len(plain) else plain


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class _Record:
    """A parsed tensor record whose words are not decoded yet."""

    index: int
    step: int
    n: int
    model: EntropyModel
    params: Any
    param_bytes: int
    words: np.ndarray  # native uint32


def _parse_record(reader: ByteReader, budget: int) -> _Record:
    """Parse one tensor record; ``budget`` is how many more symbols may be decoded."""
    index, step, n = reader.uvarint("index"), reader.u8("step"), reader.uvarint("n")
    if n > budget:
        raise FormatError(f"{reader.context} n={n} exceeds the remaining symbol budget {budget}")
    wire_id = reader.u8("model")
    model = _MODELS.get(wire_id)
    if model is None:
        known = {k: m.name for k, m in _MODELS.items()}
        raise FormatError(f"{reader.context} model={wire_id} unknown (known: {known})")
    start = reader.pos
    params = model.read_params(reader, n)
    param_bytes = reader.pos - start
    n_words = reader.uvarint("n_words")
    words = np.frombuffer(reader.take(4 * n_words, "words"), dtype="<u4").astype(np.uint32)
    return _Record(index, step, n, model, params, param_bytes, words)


def _parse(payload: bytes, max_symbols: int) -> list[_Record]:
    """Parse a payload's records, checking structure and the symbol budget."""
    reader = ByteReader(payload, "tensor payload")
    count = reader.uvarint("count")
    records: list[_Record] = []
    budget = max_symbols
    while len(records) < count:
        reader.context = f"tensor {len(records)}"
        records.append(_parse_record(reader, budget))
        budget -= records[-1].n
    if reader.remaining:
        raise FormatError(f"tensor payload: {reader.remaining} bytes left after {count} tensors")
    return records


def _decode_record(record: _Record, ordinal: int) -> CodedTensor:
    """Run the ANS decoder for one record."""
    where = f"tensor {ordinal} (index {record.index})"
    symbols = record.model.decode_symbols(record.params, record.words, record.n, where=where)
    return CodedTensor(record.index, record.step, symbols)


def decode_tensors(payload: bytes, *, max_symbols: int = 2**28,
                   expect: Optional[Sequence[int]] = None, name: str = "TDAT") -> list[CodedTensor]:
    """Decode a TDAT/SCAL payload.

    Args:
        payload: The chunk data.
        max_symbols: Limit on the *total* number of symbols in the payload, checked
            before anything is allocated (a tiny corrupt payload cannot ask for gigabytes).
        expect: If given, the symbol count of every tensor the payload must hold, in order:
            the records' count, indices (0, 1, 2, ...) and ``n`` are checked against it after
            parsing and *before* any word is decoded.
        name: The chunk type, for messages.

    Returns:
        The tensors, in stored order.

    Raises:
        FormatError: Truncated or overlong varint, K or j out of range, counts that do not
            sum to n, too many symbols, unknown model, leftover bytes, or words the ANS
            decoder rejects or does not consume exactly.
    """
    records = _parse(payload, max_symbols)
    if expect is not None:
        _check_expected(records, expect, name)
    return [_decode_record(r, i) for i, r in enumerate(records)]


def _check_expected(records: Sequence[_Record], expect: Sequence[int], name: str) -> None:
    if len(records) != len(expect):
        raise FormatError(f"{name} holds {len(records)} tensors, the architecture has {len(expect)}")
    for i, (r, n) in enumerate(zip(records, expect)):
        if r.index != i:
            raise FormatError(f"{name} tensor #{i} has index {r.index}, expected {i}")
        if r.n != n:
            raise FormatError(f"{name} tensor {i} has {r.n} values, the stream needs {n}")


def tensor_report(payload: bytes) -> list[dict[str, Any]]:
    """Per-tensor sizes of a payload, without decoding the words (``nfc info -v``).

    Args:
        payload: The chunk data.

    Returns:
        One dict per tensor: ``index``, ``step``, ``n``, ``model`` (name), ``param_bytes``,
        ``word_bytes`` and ``bits_per_symbol`` (params + words, 0.0 for an empty tensor).

    Raises:
        FormatError: The payload is malformed.
    """
    report = []
    for r in _parse(payload, 2**53):  # nothing is allocated; 2**53 keeps counts exact
        coded = r.param_bytes + 4 * r.words.size
        report.append(
            dict(index=r.index, step=r.step, n=r.n, model=r.model.name, param_bytes=r.param_bytes,
                 word_bytes=4 * r.words.size, bits_per_symbol=8 * coded / r.n if r.n else 0.0)
        )
    return report


# The causal model (wire id 5) lives in its own module and registers itself on import.
from . import causal as _causal  # noqa: E402,F401  (after every name it imports from here)
from . import arm as _arm  # noqa: E402,F401  (wire id 7)
