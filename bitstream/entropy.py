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
==  =========  =========================================  ===================================

For ``laplace``, θ = 1 - j/4096 (j in [1, 4095], exact in float64), t_0 = 1.0 and
t_m = t_{m-1} · θ, each product rounded to nearest in IEEE float64 (no exp/log/pow, whose
last bits differ between math libraries).  For ``gaussian``, ρ = 1 - j/2**32 (j in
[1, 2**32 - 1], exact in float64), r_0 = ρ, r_m = r_{m-1} · (ρ · ρ), g_0 = 1.0 and
g_m = g_{m-1} · r_{m-1} (so g_m ≈ ρ**(m²) = exp(-m²/2σ²) with ρ = exp(-1/2σ²)), again one
IEEE float64 rounding per product, in that order.  For K >= 2 the symbols ``s - lo`` are coded with
``Categorical(counts as float64, perfect=False)`` and an ``AnsCoder``: the encoder calls
``encode_reverse`` on the whole tensor, the decoder ``AnsCoder(words).decode(model, n)``.
"""
from __future__ import annotations

import math
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass
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

    Raises:
        ValueError: ``index`` or ``step`` out of range, or symbols outside int32.
        TypeError: ``symbols`` is not an integer array.
    """

    index: int
    step: int
    symbols: np.ndarray

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
    def fit(self, symbols: np.ndarray) -> Optional[Any]:
        """Choose parameters for a tensor.

        Args:
            symbols: 1-D int32 array.

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
        """


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


def _read_range(reader: ByteReader) -> tuple[int, int]:
    """Read and check ``svarint lo, uvarint K`` (shared by histogram and laplace)."""
    lo, size = reader.svarint("lo"), reader.uvarint("K")
    if not 2 <= size <= MAX_ALPHABET:
        raise FormatError(f"{reader.context} K={size} outside [2, {MAX_ALPHABET}]")
    if lo < _I32.min or lo + size - 1 > _I32.max:
        raise FormatError(f"{reader.context} symbol range [{lo}, {lo + size - 1}] outside int32")
    return lo, size


class ConstParams(NamedTuple):
    value: int


@_register
class ConstModel(EntropyModel):
    """Every symbol equals ``value`` (also the model of empty tensors): no words at all."""

    wire_id, name = 0, "const"

    def fit(self, symbols: np.ndarray) -> Optional[ConstParams]:
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

    def fit(self, symbols: np.ndarray) -> Optional[HistogramParams]:
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

    def fit(self, symbols: np.ndarray) -> Optional[LaplaceParams]:
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

    def fit(self, symbols: np.ndarray) -> Optional[GaussianParams]:
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


# --------------------------------------------------------------------------- coding


def _ans_encode(model: EntropyModel, params: Any, symbols: np.ndarray) -> np.ndarray:
    """constriction words for a tensor (empty when the alphabet has one symbol)."""
    lo, probs = model.probabilities(params)
    if probs.size == 1 or symbols.size == 0:
        return np.zeros(0, dtype=np.uint32)
    coder = _AnsCoder()
    coder.encode_reverse((symbols.astype(np.int64) - lo).astype(np.int32), _Categorical(probs, perfect=False))
    return coder.get_compressed()


def _words_bytes(words: np.ndarray) -> bytes:
    # Explicit little-endian: never depend on the host's byte order.
    return write_uvarint(len(words)) + np.asarray(words, dtype="<u4").tobytes()


def _coded_bytes(model: EntropyModel, params: Any, symbols: np.ndarray) -> int:
    """Bytes of params + words of a tensor under a model (the quantity models compete on)."""
    return len(model.write_params(params)) + len(_words_bytes(_ans_encode(model, params, symbols)))


def _encode_one(tensor: CodedTensor, models: Sequence[EntropyModel]) -> bytes:
    """One tensor record, with the model that gives the fewest bytes (ties: lowest id)."""
    best: Optional[tuple[int, bytes]] = None
    for model in models:
        params = model.fit(tensor.symbols)
        if params is None:
            continue
        body = model.write_params(params) + _words_bytes(_ans_encode(model, params, tensor.symbols))
        if best is None or len(body) < len(best[1]):
            best = (model.wire_id, body)
    if best is None:
        lo, size = _span(tensor.symbols)
        raise ValueError(f"tensor {tensor.index}: no entropy model can code K={size} symbols from {lo}")
    head = write_uvarint(tensor.index) + bytes((tensor.step,)) + write_uvarint(tensor.symbols.size)
    return head + bytes((best[0],)) + best[1]


def encode_tensors(tensors: Sequence[CodedTensor], *, models: Optional[Sequence[str]] = None) -> bytes:
    """Entropy-code tensors into a TDAT/SCAL payload.

    Args:
        tensors: The tensors, in the order they are to be stored.
        models: Names of the models to choose from (default: all).  ``const`` is always
            allowed: it is the only model that can code a one-valued tensor (constriction
            needs K >= 2), so restricting to e.g. ``["histogram"]`` stays usable on real
            networks.

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
    return write_uvarint(len(tensors)) + b"".join(_encode_one(t, chosen) for t in tensors)


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
    lo, probs = record.model.probabilities(record.params)
    where = f"tensor {ordinal} (index {record.index})"
    if probs.size == 1 or record.n == 0:
        if record.words.size:
            raise FormatError(f"{where}: n_words={record.words.size}, must be 0 when nothing is coded")
        return CodedTensor(record.index, record.step, np.full(record.n, lo, dtype=np.int32))
    try:
        coder = _AnsCoder(record.words)
        offsets = coder.decode(_Categorical(probs, perfect=False), record.n)
    except (ValueError, KeyError, RuntimeError, OverflowError) as exc:  # constriction's errors
        raise FormatError(f"{where}: corrupt ANS words ({exc})") from exc
    # A valid stream leaves the coder exactly empty; anything else is corruption.
    if not coder.is_empty():
        raise FormatError(f"{where}: ANS words left over after {record.n} symbols")
    return CodedTensor(record.index, record.step, offsets.astype(np.int64) + lo)


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
