"""Entropy coding of binary keep masks (the content of MASK chunks; numpy + constriction only).

Wire format (little-endian; uvarint is LEB128)::

    payload := uvarint count, then count × mask
    mask    := uvarint index      position in the architecture's canonical parameter order
                                  (strictly increasing within a payload)
               uvarint n          number of bits (the tensor's elements, flattened in C order)
               u8      coder      mask coder wire id (below)
               ...     body       the coder's parameters and data

Bit ``1`` means *kept*, ``0`` *pruned*.  Coders (every probability handed to constriction is a
ratio of integers from the file, so the fixed-point tables are the same on every IEEE-754
machine; see :mod:`.entropy` for the reasoning):

==  ==========  ========================================================================
id  name        body
==  ==========  ========================================================================
0   const       ``u8 bit``: all n bits equal ``bit`` (0 or 1); also the code of n = 0
1   bernoulli   ``uvarint ones`` (1 <= ones <= n-1), ``uvarint n_words``, words: i.i.d.
                bits under ``Categorical([n - ones, ones], perfect=False)``
2   context     ``uvarint L`` (row length, n mod L = 0), ``uvarint n_words``, words:
                rows of L bits, each bit under adaptive KT counts of its context (the bit
                above it; the first row has its own context), updated after each row
3   runs        ``u8 bit``, ``u8 k`` (<= 24), ``uvarint m`` (1 <= m <= n),
                ``uvarint n_bytes``, bytes: the m positions holding ``bit`` as gaps,
                each an order-k exp-Golomb code, bit-packed MSB first, zero padded
==  ==========  ========================================================================

The encoder codes each mask with every coder and keeps the smallest body (ties: lowest id).
Decoding checks everything it reads: sizes against the caller's tensor sizes before any
allocation, counts (``ones`` must equal the decoded popcount), code ranges, padding, and
leftover words or bytes, raising :class:`FormatError` naming the mask and its tensor.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence

import constriction
import numpy as np

from .errors import FormatError
from .fields import ByteReader, write_uvarint
from .registry import Registry

__all__ = ["CodedMask", "MaskCoder", "MASK_CODERS", "encode_masks", "decode_masks", "mask_report",
           "mask_coder_sizes", "encode_mask_body", "MAX_CONTEXT_ROWS", "RowBudget",
           "encode_nested_masks", "decode_nested_masks", "MAX_LEVELS"]

# PyO3 module: submodules are reached by attribute, `import constriction.stream.model` fails.
_Categorical = constriction.stream.model.Categorical
_AnsCoder = constriction.stream.stack.AnsCoder
_CONSTRICTION_ERRORS = (ValueError, KeyError, RuntimeError, OverflowError, TypeError)

#: Largest exp-Golomb order of the ``runs`` coder.
MAX_GOLOMB_K = 24


@dataclass(frozen=True, eq=False)
class CodedMask:
    """A keep mask as the bitstream sees it.

    Attributes:
        index: Position of the masked tensor in the architecture's canonical parameter order.
        bits: The mask as a read-only bool array (a copy).  Its *shape* is only a hint to the
            encoder (the ``context`` coder uses ``size // shape[0]`` as its row length when
            ``ndim >= 2``); the file stores the flattened C-order bits.  Decoded masks are 1-D.
    """

    index: int
    bits: np.ndarray

    def __post_init__(self) -> None:
        if not 0 <= self.index < 2**64:
            raise ValueError(f"CodedMask index={self.index} outside [0, 2**64)")
        raw = np.asarray(self.bits)
        if raw.dtype != np.bool_:
            if raw.dtype.kind not in "iub" or (raw.size and not np.isin(raw, (0, 1)).all()):
                raise ValueError(f"CodedMask {self.index}: bits must be bool or 0/1 integers")
        bits = np.array(raw, dtype=bool)
        bits.setflags(write=False)
        object.__setattr__(self, "bits", bits)

    @property
    def flat(self) -> np.ndarray:
        """The bits flattened in C order."""
        return self.bits.reshape(-1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodedMask):
            return NotImplemented
        return self.index == other.index and np.array_equal(self.flat, other.flat)

    __hash__ = None  # type: ignore[assignment]  # holds an array


# --------------------------------------------------------------------------- ANS helpers


def _words_bytes(words: np.ndarray) -> bytes:
    return write_uvarint(len(words)) + np.asarray(words, dtype="<u4").tobytes()


def _read_words(reader: ByteReader) -> np.ndarray:
    count = reader.uvarint("n_words")
    if 4 * count > reader.remaining:
        raise FormatError(f"{reader.context} n_words={count} needs {4 * count} bytes, {reader.remaining} left")
    return np.frombuffer(reader.take(4 * count, "words"), dtype="<u4").astype(np.uint32)


def _decoder(reader: ByteReader) -> Any:
    words = _read_words(reader)
    try:
        return _AnsCoder(words)
    except _CONSTRICTION_ERRORS as exc:
        raise FormatError(f"{reader.context}: corrupt ANS words ({exc})") from exc


def _finish(coder: Any, reader: ByteReader, n: int) -> None:
    if not coder.is_empty():
        raise FormatError(f"{reader.context}: ANS words left over after {n} bits")


def _kt(zeros: np.ndarray, ones: np.ndarray) -> np.ndarray:
    """Per-symbol KT count pairs ``[2 z + 1, 2 o + 1]`` as float64 (exact integers)."""
    return np.stack([2 * zeros + 1, 2 * ones + 1], axis=-1).astype(np.float64)


# --------------------------------------------------------------------------- coders


class MaskCoder(ABC):
    """One way to code a mask.  Subclasses declare a stable ``wire_id`` (never reused) and a ``name``."""

    wire_id: ClassVar[int]
    name: ClassVar[str]

    @abstractmethod
    def encode(self, bits: np.ndarray, shape: tuple[int, ...]) -> Optional[bytes]:
        """The body (parameters and data) for flat bool ``bits``, or None if not applicable."""

    @abstractmethod
    def decode(self, reader: ByteReader, n: int, rows: "RowBudget") -> np.ndarray:
        """Read a body and return the n bits (bool).  Raises FormatError on anything invalid.

        ``rows`` is the payload's budget of sequentially decoded rows (only ``context`` uses it)."""


#: The ``context`` masks of one MASK payload hold at most this many rows in total (each row is
#: one sequential decoding step; format.md section 4a).
MAX_CONTEXT_ROWS = 2**17


class RowBudget:
    """What is left of :data:`MAX_CONTEXT_ROWS` in one payload."""

    def __init__(self, rows: int = MAX_CONTEXT_ROWS) -> None:
        self.left = rows

    def take(self, rows: int, where: str) -> None:
        if rows > self.left:
            raise FormatError(f"{where}: {rows} context rows exceed the {self.left} left of the payload's "
                              f"{MAX_CONTEXT_ROWS} (format.md section 4a)")
        self.left -= rows


_TABLE: Registry[MaskCoder] = Registry("mask coder")
_CODERS = _TABLE.by_id_map
_register = _TABLE.register
#: Mask coders by name, in registration (= wire id) order.
MASK_CODERS: Mapping[str, MaskCoder] = _TABLE.by_name_map


@_register
class ConstCoder(MaskCoder):
    """All bits equal: one byte."""

    wire_id, name = 0, "const"

    def encode(self, bits: np.ndarray, shape: tuple[int, ...]) -> Optional[bytes]:
        if bits.size == 0:
            return b"\x01"
        first = bool(bits[0])
        return bytes([first]) if bool(np.all(bits == first)) else None

    def decode(self, reader: ByteReader, n: int, rows: "RowBudget") -> np.ndarray:
        bit = reader.u8("bit")
        if bit > 1:
            raise FormatError(f"{reader.context} const bit={bit} outside [0, 1]")
        return np.full(n, bool(bit))


@_register
class BernoulliCoder(MaskCoder):
    """I.i.d. bits with the exact share of ones: ``Categorical([n - ones, ones])``."""

    wire_id, name = 1, "bernoulli"

    def encode(self, bits: np.ndarray, shape: tuple[int, ...]) -> Optional[bytes]:
        n, ones = bits.size, int(np.count_nonzero(bits))
        if not 0 < ones < n:
            return None
        coder = _AnsCoder()
        coder.encode_reverse(bits.astype(np.int32), _Categorical(np.array([n - ones, ones], np.float64), perfect=False))
        return write_uvarint(ones) + _words_bytes(coder.get_compressed())

    def decode(self, reader: ByteReader, n: int, rows: "RowBudget") -> np.ndarray:
        ones = reader.uvarint("ones")
        if not 0 < ones < n:
            raise FormatError(f"{reader.context} bernoulli ones={ones} outside [1, {n - 1}] (n={n})")
        coder = _decoder(reader)
        try:
            bits = coder.decode(_Categorical(np.array([n - ones, ones], np.float64), perfect=False), n)
        except _CONSTRICTION_ERRORS as exc:
            raise FormatError(f"{reader.context}: corrupt ANS words ({exc})") from exc
        _finish(coder, reader, n)
        got = int(np.count_nonzero(bits))
        if got != ones:
            raise FormatError(f"{reader.context}: decoded {got} kept weights, the header says ones={ones}")
        return bits.astype(bool)


def _row_contexts(prev: Optional[np.ndarray], width: int) -> np.ndarray:
    """Context of each bit of a row: the bit above (0 or 1), or 2 in the first row."""
    return np.full(width, 2, np.int64) if prev is None else prev.astype(np.int64)


@_register
class ContextCoder(MaskCoder):
    """Rows of L bits; each bit's context is the bit above it; KT counts adapted row by row.

    Count tables live in integers: ``z[c], o[c]`` = zeros and ones seen so far in context c
    (rows before the current one).  A bit in context c is coded with the counts
    ``[2 z[c] + 1, 2 o[c] + 1]``.  One ANS stream; the encoder pushes the rows last first.
    """

    wire_id, name = 2, "context"

    def encode(self, bits: np.ndarray, shape: tuple[int, ...]) -> Optional[bytes]:
        n = bits.size
        if n == 0:
            return None
        width = n // shape[0] if len(shape) >= 2 and shape[0] > 0 else n
        if n // width > MAX_CONTEXT_ROWS:
            return None
        rows = bits.reshape(-1, width).astype(np.int64)
        counts = np.zeros((3, 2), np.int64)
        probs = []
        for r, row in enumerate(rows):
            ctx = _row_contexts(rows[r - 1] if r else None, width)
            probs.append(_kt(counts[ctx, 0], counts[ctx, 1]))
            np.add.at(counts, (ctx, row), 1)
        coder, family = _AnsCoder(), _Categorical(perfect=False)
        for row, p in zip(rows[::-1], probs[::-1]):
            coder.encode_reverse(row.astype(np.int32), family, p)
        return write_uvarint(width) + _words_bytes(coder.get_compressed())

    def decode(self, reader: ByteReader, n: int, rows: "RowBudget") -> np.ndarray:
        width = reader.uvarint("L")
        if not 1 <= width <= n or n % width:
            raise FormatError(f"{reader.context} context L={width} does not divide n={n} (needs 1 <= L <= n)")
        rows.take(n // width, reader.context)
        coder = _decoder(reader)
        family = _Categorical(perfect=False)
        counts = np.zeros((3, 2), np.int64)
        out = np.empty((n // width, width), np.int64)
        try:
            for r in range(n // width):
                ctx = _row_contexts(out[r - 1] if r else None, width)
                out[r] = coder.decode(family, _kt(counts[ctx, 0], counts[ctx, 1]))
                np.add.at(counts, (ctx, out[r]), 1)
        except _CONSTRICTION_ERRORS as exc:
            raise FormatError(f"{reader.context}: corrupt ANS words ({exc})") from exc
        _finish(coder, reader, n)
        return out.reshape(-1).astype(bool)


_POW2 = np.left_shift(1, np.arange(61, -1, -1, dtype=np.int64))   # 2**61 .. 2**0


def _bit_length(u: np.ndarray) -> np.ndarray:
    """Bit length of positive int64 values below 2**53 (exact through float64)."""
    return np.frexp(u.astype(np.float64))[1].astype(np.int64)


def _golomb_bits(values: np.ndarray, k: int) -> int:
    """Total bits of order-k exp-Golomb codes of non-negative ints (encoder only)."""
    return int(np.sum(2 * _bit_length(values.astype(np.int64) + (1 << k)) - k - 1))


def _pack_codes(codes: np.ndarray, widths: np.ndarray) -> bytes:
    """Concatenate ``codes[i]`` written in ``widths[i]`` bits, MSB first; zero padded to a byte."""
    total = int(widths.sum())
    owner = np.repeat(np.arange(codes.size), widths)
    shift = np.repeat(widths, widths) - 1 - (np.arange(total) - np.repeat(np.cumsum(widths) - widths, widths))
    bits = (np.right_shift(codes[owner], shift) & 1).astype(np.uint8)
    return np.packbits(bits).tobytes()


@_register
class RunsCoder(MaskCoder):
    """Positions of the rarer bit value as gaps, order-k exp-Golomb, bit-packed.

    Gap ``g_0 = p_0`` and ``g_i = p_i - p_(i-1) - 1``.  The order-k code of v: with
    ``u = v + 2^k`` of bit length b, ``b - k - 1`` zero bits then the b bits of u, MSB first.
    """

    wire_id, name = 3, "runs"

    def encode(self, bits: np.ndarray, shape: tuple[int, ...]) -> Optional[bytes]:
        n, ones = bits.size, int(np.count_nonzero(bits))
        if not 0 < ones < n:
            return None
        bit = 1 if ones <= n - ones else 0
        pos = np.flatnonzero(bits == bool(bit)).astype(np.int64)
        gaps = np.diff(pos, prepend=-1) - 1
        k = min(range(min(MAX_GOLOMB_K, int(n).bit_length()) + 1), key=lambda j: (_golomb_bits(gaps, j), j))
        data = _pack_codes(gaps + (1 << k), 2 * _bit_length(gaps + (1 << k)) - k - 1)
        return bytes([bit, k]) + write_uvarint(len(pos)) + write_uvarint(len(data)) + data

    def decode(self, reader: ByteReader, n: int, rows: "RowBudget") -> np.ndarray:
        bit, k = reader.u8("bit"), reader.u8("k")
        if bit > 1 or k > MAX_GOLOMB_K:
            raise FormatError(f"{reader.context} runs bit={bit} / k={k} outside [0, 1] / [0, {MAX_GOLOMB_K}]")
        m = reader.uvarint("m")
        if not 1 <= m <= n:
            raise FormatError(f"{reader.context} runs m={m} outside [1, {n}] (n={n})")
        size = reader.uvarint("n_bytes")
        data = reader.take(size, "bytes")
        if m > 8 * size:   # every code takes at least one bit
            raise FormatError(f"{reader.context} runs m={m} codes cannot fit in {size} bytes")
        stream = np.unpackbits(np.frombuffer(data, np.uint8)).astype(np.int64)
        one_at = np.flatnonzero(stream)
        total = stream.size
        out = np.full(n, not bit)
        cur, p = 0, -1
        for i in range(m):
            j = int(np.searchsorted(one_at, cur))
            lead = int(one_at[j]) - cur if j < one_at.size else total
            width = lead + k + 1
            if width > 62:
                raise FormatError(f"{reader.context}: runs gap {i} has {lead} leading zeros (k={k}): too long")
            end = cur + lead + width
            if end > total:
                raise FormatError(f"{reader.context}: runs data ends inside gap {i} of {m}")
            u = int(stream[cur + lead:end] @ _POW2[-width:])
            p += u - (1 << k) + 1
            if p >= n:
                raise FormatError(f"{reader.context}: runs position {p} of gap {i} outside [0, {n})")
            out[p] = bool(bit)
            cur = end
        if total - cur >= 8 or stream[cur:].any():
            raise FormatError(f"{reader.context}: runs data has {total - cur} bits after {m} gaps "
                              "(only zero padding to a byte is allowed)")
        return out


# --------------------------------------------------------------------------- payloads


def encode_mask_body(mask: CodedMask, coders: Sequence[MaskCoder] | None = None) -> tuple[MaskCoder, bytes]:
    """The smallest ``(coder, body)`` for one mask (ties: lowest wire id)."""
    flat, shape = mask.flat, tuple(mask.bits.shape)
    best: Optional[tuple[MaskCoder, bytes]] = None
    for coder in (coders if coders is not None else list(_CODERS.values())):
        body = coder.encode(flat, shape)
        if body is not None and (best is None or len(body) < len(best[1])):
            best = (coder, body)
    if best is None:
        raise ValueError(f"no mask coder can code mask {mask.index}")
    return best


def mask_coder_sizes(bits: np.ndarray) -> dict[str, Optional[int]]:
    """Bytes of each coder's body for a mask (None: not applicable); for measurements.

    Args:
        bits: The mask (bool); with ``ndim >= 2`` the ``context`` coder uses its rows.
    """
    mask = CodedMask(0, bits)
    out = {}
    for name, coder in MASK_CODERS.items():
        body = coder.encode(mask.flat, tuple(mask.bits.shape))
        out[name] = None if body is None else len(body)
    return out


def encode_masks(masks: Sequence[CodedMask], coders: Sequence[MaskCoder] | None = None) -> bytes:
    """Serialize masks into a MASK payload, each with its smallest coder.

    Args:
        masks: The masks, in strictly increasing ``index`` order.
        coders: Restrict the candidates (tests, measurements); default: every registered coder.

    Raises:
        ValueError: indices not strictly increasing, or no candidate coder applies.
    """
    candidates = list(coders if coders is not None else _CODERS.values())
    return _encode_list(masks, candidates, RowBudget(MAX_CONTEXT_ROWS))


def _encode_list(masks: Sequence[CodedMask], candidates: Sequence[MaskCoder], rows: "RowBudget") -> bytes:
    """One mask list (``count`` then the masks), each with its smallest candidate coder; the
    ``context`` coder only while the payload's row budget lasts."""
    out = [write_uvarint(len(masks))]
    last = -1
    for mask in masks:
        if mask.index <= last:
            raise ValueError(f"mask indices must be strictly increasing: {mask.index} after {last}")
        last = mask.index
        n_rows = mask.bits.shape[0] if mask.bits.ndim >= 2 and mask.bits.shape[0] > 0 else 1
        allowed = [c for c in candidates if c.name != "context" or n_rows <= rows.left]
        coder, body = encode_mask_body(mask, allowed)
        if coder.name == "context":
            rows.left -= n_rows
        out += [write_uvarint(mask.index), write_uvarint(mask.flat.size), bytes([coder.wire_id]), body]
    return b"".join(out)


class _Head:
    __slots__ = ("index", "n", "coder")

    def __init__(self, index: int, n: int, coder: MaskCoder) -> None:
        self.index, self.n, self.coder = index, n, coder


def _read_head(reader: ByteReader, ordinal: int, last: int, sizes: Optional[Sequence[int]], budget: int,
               what: str = "MASK", sized: str = "the tensor has") -> _Head:
    reader.context = f"{what} mask {ordinal}"
    index = reader.uvarint("index")
    reader.context = f"{what} mask {ordinal} (tensor {index})"
    if index <= last:
        raise FormatError(f"{reader.context}: indices must be strictly increasing ({index} after {last})")
    if sizes is not None and index >= len(sizes):
        raise FormatError(f"{reader.context}: no such tensor, the architecture has {len(sizes)}")
    n = reader.uvarint("n")
    if sizes is not None and sizes[index] < 0:
        raise FormatError(f"{reader.context}: tensor {index} has no mask in the level above")
    if sizes is not None and n != sizes[index]:
        raise FormatError(f"{reader.context}: n={n} bits, {sized} {sizes[index]} elements")
    if n > budget:
        raise FormatError(f"{reader.context}: n={n} exceeds the remaining budget of {budget} bits")
    wire_id = reader.u8("coder")
    if wire_id not in _CODERS:
        raise FormatError(f"{reader.context}: unknown mask coder id {wire_id} (known: {sorted(_CODERS)})")
    return _Head(index, n, _CODERS[wire_id])


def _decode_list(reader: ByteReader, sizes: Optional[Sequence[int]], budget: int, rows: "RowBudget",
                 what: str = "MASK", sized: str = "the tensor has") -> tuple[list[CodedMask], int]:
    """One mask list (``count`` then the masks) at the reader's position: (masks, budget left).
    ``sized`` says what ``sizes`` count, for messages."""
    count = reader.uvarint("count")
    if count > reader.remaining:   # each mask takes at least 3 bytes
        raise FormatError(f"{what} count={count}, only {reader.remaining} bytes follow")
    masks: list[CodedMask] = []
    last = -1
    for i in range(count):
        head = _read_head(reader, i, last, sizes, budget, what, sized)
        bits = head.coder.decode(reader, head.n, rows)
        masks.append(CodedMask(head.index, bits))
        last, budget = head.index, budget - head.n
    return masks, budget


def decode_masks(payload: bytes, *, sizes: Optional[Sequence[int]] = None,
                 max_bits: int = 2**28) -> list[CodedMask]:
    """Decode a MASK payload.

    Args:
        payload: The chunk data.
        sizes: Element count of every tensor of the architecture (by index), if known: each
            mask's index and n are checked against it before its bits are decoded.
        max_bits: Limit on the total number of bits, checked before anything is allocated.

    Returns:
        The masks (1-D bool), in stored order.

    Raises:
        FormatError: Malformed, corrupt or inconsistent data (the message names the mask and
            its tensor index).
    """
    reader = ByteReader(payload, "MASK")
    masks, _ = _decode_list(reader, sizes, max_bits, RowBudget())
    if reader.remaining:
        raise FormatError(f"MASK: {reader.remaining} bytes left after {len(masks)} masks")
    return masks


#: Most nested levels a MASK payload of nested masks may hold.
MAX_LEVELS = 8


def encode_nested_masks(levels: Sequence[Sequence[CodedMask]], coders: Sequence[MaskCoder] | None = None) -> bytes:
    """Serialize nested masks (supermask levels) into a MASK payload.

    Wire format: ``u8 N`` (1 <= N <= :data:`MAX_LEVELS`), then N mask lists, each exactly a MASK
    payload (``count``, masks).  Level 1 masks a tensor's elements; level n > 1 masks the positions
    level n - 1 kept (its ``n`` is their count, its bits follow their C order).  Every level lists
    the same tensor indices.  One context-row budget covers the whole payload.

    Args:
        levels: ``levels[n]`` are the level n + 1 masks (level n > 0 over level n's kept positions).
    """
    if not 1 <= len(levels) <= MAX_LEVELS:
        raise ValueError(f"{len(levels)} mask levels, need 1 to {MAX_LEVELS}")
    first = [m.index for m in levels[0]]
    out = [bytes([len(levels)])]
    rows = RowBudget(MAX_CONTEXT_ROWS)
    candidates = list(coders if coders is not None else _CODERS.values())
    for n, masks in enumerate(levels):
        if [m.index for m in masks] != first:
            raise ValueError(f"mask level {n + 1} lists tensors {[m.index for m in masks]}, level 1 lists {first}")
        out.append(_encode_list(masks, candidates, rows))
    return b"".join(out)


def decode_nested_masks(payload: bytes, *, sizes: Sequence[int], max_bits: int = 2**28) -> list[list[CodedMask]]:
    """Decode a payload of :func:`encode_nested_masks`; every size and index is checked first.

    Args:
        sizes: element count of every tensor of the architecture (by index).
        max_bits: limit on the total number of bits of all levels.

    Returns:
        The levels, each a list of 1-D bool masks (level n > 1 over level n - 1's kept positions).

    Raises:
        FormatError: malformed, corrupt or inconsistent data (names the level, mask and tensor).
    """
    reader = ByteReader(payload, "MASK")
    n_levels = reader.u8("levels")
    if not 1 <= n_levels <= MAX_LEVELS:
        raise FormatError(f"MASK levels={n_levels} outside [1, {MAX_LEVELS}]")
    levels: list[list[CodedMask]] = []
    budget, rows = max_bits, RowBudget()
    for n in range(n_levels):
        if n == 0:
            level_sizes: Sequence[int] = sizes
        else:
            kept = {m.index: int(np.count_nonzero(m.flat)) for m in levels[-1]}
            level_sizes = [kept.get(i, -1) for i in range(len(sizes))]
        masks, budget = _decode_list(reader, level_sizes, budget, rows, f"MASK level {n + 1}",
                                     "the level above kept" if n else "the tensor has")
        if n and [m.index for m in masks] != [m.index for m in levels[0]]:
            raise FormatError(f"MASK level {n + 1} lists tensors {[m.index for m in masks]}, "
                              f"level 1 lists {[m.index for m in levels[0]]}")
        levels.append(masks)
    if reader.remaining:
        raise FormatError(f"MASK: {reader.remaining} bytes left after {n_levels} levels")
    return levels


def mask_report(payload: bytes) -> list[dict[str, Any]]:
    """Per-mask sizes of a payload (decodes it): ``index``, ``n``, ``kept``, ``coder``,
    ``bytes`` (the whole record) and ``bits_per_element``."""
    reader = ByteReader(payload, "MASK")
    count = reader.uvarint("count")
    report, last, budget, rows = [], -1, 2**28, RowBudget()
    for i in range(count):
        start = reader.pos
        head = _read_head(reader, i, last, None, budget)
        bits = head.coder.decode(reader, head.n, rows)
        budget -= head.n
        size = reader.pos - start
        report.append(dict(index=head.index, n=head.n, kept=int(np.count_nonzero(bits)), coder=head.coder.name,
                           bytes=size, bits_per_element=8 * size / head.n if head.n else 0.0))
        last = head.index
    if reader.remaining:
        raise FormatError(f"MASK: {reader.remaining} bytes left after {count} masks")
    return report
