"""Prior files (``.nfp``): a meta-learned initialisation of one network, in the container framing.

A *prior* is the starting point of the weights of one architecture and size; a stream encoded
from it names it by the SHA-256 of the prior file's bytes (its ``PRIR`` chunk) and codes its
weights as residuals from it.  ``docs/priors.md`` is the specification with examples; this
module is the byte layer: framing and raw records.  It knows nothing of parameter shapes (they
come from the architecture registry, outside ``bitstream``): :mod:`nfcodec.priors` checks the
tensors against ``param_shapes(record)``.  No torch.

Layout
------
The container of :mod:`.container` (length, type, data, CRC-32 per chunk) with its own signature
and versions::

    offset  size  field
    0       8     signature   b"\\x89NFP\\r\\n\\x1a\\n"
    8       1     major       1
    9       1     minor       0
    10      ...   chunks: PHDR ARCH PTEN [pLRS] [pMSK] [meTA] NEND

==========  ========  ====  ==============================================================
type        critical  once  content
==========  ========  ====  ==============================================================
``PHDR``    yes       yes   :class:`PriorHeader` (11 bytes); MUST be the first chunk
``ARCH``    yes       yes   the architecture record, exactly as in a stream (``PHDR.arch``)
``PTEN``    yes       yes   the values: per tensor u8 step, u32 count, count x i32 symbols
``pLRS``    no        yes   Meta-SGD inner-loop step sizes, one f32 per value (flag bit 0)
``pMSK``    no        yes   keep masks, one bit per value, per tensor byte-aligned (flag bit 1)
``meTA``    no        yes   UTF-8 JSON object: training settings and measured figures
``NEND``    yes       yes   empty; MUST be the last chunk
==========  ========  ====  ==============================================================

Rules (beyond the container's): ``ARCH`` and ``PTEN`` MUST be present; ``pLRS`` is present iff
``PHDR.flags`` bit 0 is set and ``pMSK`` iff bit 1 is (a flag without its chunk, a damaged
flagged chunk, or a chunk without its flag is an error); ``PTEN`` holds exactly
``PHDR.n_tensors`` tensors and nothing after them, every step index is below
:data:`MAX_PRIOR_STEP`, every |symbol| below :data:`MAX_PRIOR_SYMBOL`, the total count at most
:data:`MAX_PRIOR_VALUES`; a masked-out value (mask bit 0) MUST have symbol 0; padding bits of a
mask MUST be 0; step sizes MUST be finite.  Every count is checked against the bytes present
before anything is allocated.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .chunktypes import ChunkType
from .container import Chunk, ContainerFormat, read_container, register_container_format, write_container
from .errors import FieldRangeError, FormatError
from .fields import Field, Record, enum_field
from .headers import ARCHS, MAX_FRAME_PIXELS, MEDIA, unpack_arch

__all__ = [
    "PRIOR_SIGNATURE",
    "PRIOR_VERSION",
    "PRIOR_VERSIONS",
    "PRIOR_CHUNK_TYPES",
    "PRIOR_FORMAT",
    "MAX_PRIOR_VALUES",
    "MAX_PRIOR_STEP",
    "MAX_PRIOR_SYMBOL",
    "FLAG_LRS",
    "FLAG_MASKS",
    "PriorHeader",
    "RawTensor",
    "PriorFile",
    "pack_tensors",
    "unpack_tensors",
    "pack_lrs",
    "unpack_lrs",
    "pack_masks",
    "unpack_masks",
    "write_prior_file",
    "read_prior_file",
]

PRIOR_SIGNATURE = b"\x89NFP\r\n\x1a\n"
#: The version this writer produces.
PRIOR_VERSION = (1, 0)
#: Every released version of the prior file format.
PRIOR_VERSIONS: Mapping[tuple[int, int], str] = MappingProxyType({
    (1, 0): "initial prior format: PHDR ARCH PTEN pLRS pMSK meTA NEND",
})
#: Most parameter values a prior may hold (all tensors together).
MAX_PRIOR_VALUES = 2**26
#: Step indices of a prior are below this (steps down to 2**-20 and coarser).
MAX_PRIOR_STEP = 160
#: |symbol| of a prior is below this: every value q * step is exact in float32 too.
MAX_PRIOR_SYMBOL = 2**20
#: PHDR.flags bit 0: the file has Meta-SGD step sizes (pLRS).
FLAG_LRS = 1
#: PHDR.flags bit 1: the file has keep masks (pMSK).
FLAG_MASKS = 2

_TYPES = (
    ChunkType(b"PHDR", True, "prior header (PriorHeader): media, arch, size, tensor count, flags"),
    ChunkType(b"ARCH", True, "architecture record, selected by PHDR.arch (as in a stream)"),
    ChunkType(b"PTEN", True, "the prior's values: per tensor u8 step, u32 count, count x i32 symbols"),
    ChunkType(b"pLRS", True, "Meta-SGD inner-loop step sizes, f32 per value (PHDR.flags bit 0; encoder only)"),
    ChunkType(b"pMSK", True, "keep masks, one bit per value, byte-aligned per tensor (PHDR.flags bit 1; encoder only)"),
    ChunkType(b"meTA", True, "UTF-8 JSON: training algorithm, data, command, steps, measured figures (skippable)"),
    ChunkType(b"NEND", True, "empty; marks a complete prior file"),
)
#: The chunk types of prior files (streams have theirs in :mod:`.chunktypes`).
PRIOR_CHUNK_TYPES: Mapping[bytes, ChunkType] = MappingProxyType({t.ctype: t for t in _TYPES})

#: The prior-file family of the container (registered: ``read_container(..., signature=PRIOR_SIGNATURE)``).
PRIOR_FORMAT = register_container_format(ContainerFormat(
    name="nfc prior file", signature=PRIOR_SIGNATURE, versions=PRIOR_VERSIONS, version=PRIOR_VERSION,
    first=b"PHDR", chunk_types=PRIOR_CHUNK_TYPES, label="prior file"))

_U16 = 2**16 - 1
_TENSOR_HEAD = struct.Struct("<BI")


@dataclass(frozen=True)
class PriorHeader(Record):
    """``PHDR``: what the prior is for (11 bytes)."""

    NAME = "PHDR"
    FIELDS = (
        enum_field("media", MEDIA, "image or video (the ids of NHDR.media)"),
        enum_field("arch", ARCHS, "network architecture; selects the ARCH record (the ids of NHDR.arch)"),
        Field("frames", "H", 1, _U16, "frames of the signal or tile the prior is for (1 for an image)"),
        Field("height", "H", 1, _U16, "height of the signal or tile in pixels"),
        Field("width", "H", 1, _U16, "width of the signal or tile in pixels"),
        Field("n_tensors", "H", 1, _U16, "parameter tensors in PTEN"),
        Field("flags", "B", 0, FLAG_LRS | FLAG_MASKS, "bit 0: pLRS present; bit 1: pMSK present; others 0"),
    )

    media: int
    arch: int
    frames: int
    height: int
    width: int
    n_tensors: int
    flags: int

    def validate(self) -> None:
        """An image prior has one frame; the frame size limit of streams."""
        if self.media == 0 and self.frames != 1:
            raise FieldRangeError(f"PHDR.frames={self.frames} for an image, must be 1")
        pixels = self.width * self.height
        if pixels > MAX_FRAME_PIXELS:
            raise FieldRangeError(
                f"PHDR: {self.width}x{self.height} = {pixels} pixels per frame exceeds the limit of {MAX_FRAME_PIXELS}")


@dataclass(frozen=True, eq=False)
class RawTensor:
    """One tensor of ``PTEN``: symbols (flat int32, |q| < 2**20) and a step index (< 160).

    The values are ``symbols * STEP_TABLE[step]`` (``nfcodec.quant``), exact.
    """

    step: int
    symbols: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", np.ascontiguousarray(self.symbols, dtype=np.int32).reshape(-1))

    @property
    def count(self) -> int:
        return int(self.symbols.size)


@dataclass(frozen=True, eq=False)
class PriorFile:
    """A parsed prior file (byte level: flat tensors, no shapes).

    Attributes:
        version: ``(major, minor)``.
        header: The ``PHDR`` record.
        arch: The ``ARCH`` record (``unpack_arch(header.arch, ...)``).
        tensors: The ``PTEN`` tensors, ``header.n_tensors`` of them.
        lrs: Flat float32 step sizes, one per value (all tensors, in order), or None.
        masks: Flat bool keep masks, one per tensor, or None.
        meta: The ``meTA`` object ({} when absent or not a JSON object: it is ancillary).
        extra: Unknown ancillary chunks (kept, not interpreted).
        nbytes: The file size.
    """

    version: tuple[int, int]
    header: PriorHeader
    arch: Record
    tensors: tuple[RawTensor, ...]
    lrs: Optional[np.ndarray] = None
    masks: Optional[tuple[np.ndarray, ...]] = None
    meta: dict = field(default_factory=dict)
    extra: tuple[Chunk, ...] = ()
    nbytes: int = 0


# --------------------------------------------------------------------------- payloads


def pack_tensors(tensors: Sequence[RawTensor]) -> bytes:
    """The ``PTEN`` payload: per tensor u8 step, u32 count, count x i32 LE symbols.

    Raises:
        ValueError: A step, a symbol or the total count is out of range (API misuse).
    """
    parts: list[bytes] = []
    total = 0
    for i, t in enumerate(tensors):
        if not 0 <= t.step < MAX_PRIOR_STEP:
            raise ValueError(f"tensor {i}: step={t.step} outside [0, {MAX_PRIOR_STEP - 1}]")
        if t.count and int(np.abs(t.symbols.astype(np.int64)).max()) >= MAX_PRIOR_SYMBOL:
            raise ValueError(f"tensor {i}: a symbol has |q| >= {MAX_PRIOR_SYMBOL}")
        total += t.count
        if total > MAX_PRIOR_VALUES:
            raise ValueError(f"more than {MAX_PRIOR_VALUES} values")
        parts += [_TENSOR_HEAD.pack(t.step, t.count), t.symbols.astype("<i4").tobytes()]
    return b"".join(parts)


def unpack_tensors(data: bytes, n_tensors: int) -> tuple[RawTensor, ...]:
    """Parse a ``PTEN`` payload of ``n_tensors`` tensors.

    Raises:
        FieldRangeError: A step index >= 160, a |symbol| >= 2**20, or more than 2**26 values.
        FormatError: The payload ends inside a tensor or has bytes after the last one.
    """
    view = memoryview(data)
    pos, total = 0, 0
    out: list[RawTensor] = []
    for i in range(n_tensors):
        if len(view) - pos < _TENSOR_HEAD.size:
            raise FormatError(f"PTEN tensor {i} at offset {pos}: data ends inside the tensor header "
                              f"({len(view) - pos} of {_TENSOR_HEAD.size} bytes)")
        step, count = _TENSOR_HEAD.unpack_from(view, pos)
        pos += _TENSOR_HEAD.size
        if step >= MAX_PRIOR_STEP:
            raise FieldRangeError(f"PTEN tensor {i}: step={step} outside [0, {MAX_PRIOR_STEP - 1}]")
        total += count
        if total > MAX_PRIOR_VALUES:
            raise FieldRangeError(f"PTEN tensor {i}: count={count} brings the total to {total} values, "
                                  f"more than {MAX_PRIOR_VALUES}")
        if 4 * count > len(view) - pos:
            raise FormatError(f"PTEN tensor {i}: count={count} needs {4 * count} bytes, {len(view) - pos} left")
        q = np.frombuffer(view, dtype="<i4", count=count, offset=pos).astype(np.int32)
        pos += 4 * count
        if count and int(np.abs(q.astype(np.int64)).max()) >= MAX_PRIOR_SYMBOL:
            bad = int(q[np.argmax(np.abs(q.astype(np.int64)))])
            raise FieldRangeError(f"PTEN tensor {i}: symbol {bad} outside (-{MAX_PRIOR_SYMBOL}, {MAX_PRIOR_SYMBOL})")
        out.append(RawTensor(step, q))
    if pos != len(view):
        raise FormatError(f"PTEN: {len(view) - pos} bytes after the last of its {n_tensors} tensors")
    return tuple(out)


def pack_lrs(lrs: np.ndarray) -> bytes:
    """The ``pLRS`` payload: float32 LE, one per value.

    Raises:
        ValueError: A step size is not finite.
    """
    arr = np.ascontiguousarray(lrs, dtype=np.float32).reshape(-1)
    if not np.isfinite(arr).all():
        raise ValueError("Meta-SGD step sizes must be finite")
    return arr.astype("<f4").tobytes()


def unpack_lrs(data: bytes, total: int) -> np.ndarray:
    """Parse a ``pLRS`` payload of ``total`` step sizes (flat float32).

    Raises:
        FormatError: The length is not ``4 * total`` or a value is not finite.
    """
    if len(data) != 4 * total:
        raise FormatError(f"pLRS: {len(data)} bytes, expected {4 * total} (one f32 per value of PTEN)")
    lrs = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(lrs).all():
        bad = int(np.flatnonzero(~np.isfinite(lrs))[0])
        raise FormatError(f"pLRS: step size {bad} is {lrs[bad]}, must be finite")
    return lrs


def pack_masks(masks: Sequence[np.ndarray]) -> bytes:
    """The ``pMSK`` payload: each mask packed LSB first (``np.packbits(bitorder='little')``)."""
    return b"".join(np.packbits(np.asarray(m, dtype=bool).reshape(-1), bitorder="little").tobytes() for m in masks)


def unpack_masks(data: bytes, counts: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Parse a ``pMSK`` payload: one flat bool mask per tensor of ``counts[i]`` values.

    Raises:
        FormatError: The length is not ``sum(ceil(count / 8))`` or a padding bit is set.
    """
    sizes = [(n + 7) // 8 for n in counts]
    if len(data) != sum(sizes):
        raise FormatError(f"pMSK: {len(data)} bytes, expected {sum(sizes)} (one bit per value, "
                          "byte-aligned per tensor)")
    out: list[np.ndarray] = []
    pos = 0
    for i, (n, size) in enumerate(zip(counts, sizes)):
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, count=size, offset=pos), bitorder="little")
        if bits[n:].any():
            raise FormatError(f"pMSK tensor {i}: padding bits after its {n} values must be 0")
        out.append(bits[:n].astype(bool))
        pos += size
    return tuple(out)


# --------------------------------------------------------------------------- files


def write_prior_file(header: PriorHeader, arch: Record, tensors: Sequence[RawTensor],
                     lrs: Optional[np.ndarray] = None, masks: Optional[Sequence[np.ndarray]] = None,
                     meta: Optional[Mapping[str, Any]] = None) -> bytes:
    """Build a prior file (deterministic: the same arguments give the same bytes).

    Args:
        header: ``PHDR``; its flags MUST match the presence of ``lrs`` and ``masks``.
        arch: The ``ARCH`` record (its ``ARCH_ID`` MUST be ``header.arch``).
        tensors: ``header.n_tensors`` tensors.
        lrs: Flat step sizes, one per value, or None.
        masks: One flat keep mask per tensor, or None; masked-out symbols MUST be 0.
        meta: A JSON-serializable mapping for ``meTA`` (written with sorted keys, UTF-8); none
            when empty.

    Returns:
        The file's bytes.

    Raises:
        ValueError: The arguments are inconsistent (API misuse).
    """
    if getattr(arch, "ARCH_ID", None) != header.arch:
        raise ValueError(f"ARCH record {type(arch).__name__} does not match PHDR.arch={header.arch}")
    if len(tensors) != header.n_tensors:
        raise ValueError(f"{len(tensors)} tensors but PHDR.n_tensors={header.n_tensors}")
    if bool(header.flags & FLAG_LRS) != (lrs is not None) or bool(header.flags & FLAG_MASKS) != (masks is not None):
        raise ValueError(f"PHDR.flags={header.flags} does not match the step sizes / masks given")
    total = sum(t.count for t in tensors)
    chunks = [Chunk(b"PHDR", header.pack()), Chunk(b"ARCH", arch.pack()), Chunk(b"PTEN", pack_tensors(tensors))]
    if lrs is not None:
        if np.size(lrs) != total:
            raise ValueError(f"{np.size(lrs)} step sizes for {total} values")
        chunks.append(Chunk(b"pLRS", pack_lrs(lrs)))
    if masks is not None:
        if len(masks) != len(tensors) or any(np.size(m) != t.count for m, t in zip(masks, tensors)):
            raise ValueError("one mask per tensor, with one bit per value")
        for i, (m, t) in enumerate(zip(masks, tensors)):
            if t.symbols[~np.asarray(m, dtype=bool).reshape(-1)].any():
                raise ValueError(f"tensor {i}: a masked-out value is not 0")
        chunks.append(Chunk(b"pMSK", pack_masks(masks)))
    if meta:
        chunks.append(Chunk(b"meTA", json.dumps(dict(meta), sort_keys=True, ensure_ascii=False,
                                                allow_nan=False, separators=(",", ":")).encode("utf-8")))
    chunks.append(Chunk(b"NEND", b""))
    return write_container(chunks, version=PRIOR_VERSION, signature=PRIOR_SIGNATURE)


def _meta(data: bytes) -> dict:
    """The meTA object, or {} if it is not a UTF-8 JSON object (ancillary: never an error)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def read_prior_file(data: bytes) -> PriorFile:
    """Parse and check a prior file (all byte-level rules of the module docstring).

    Args:
        data: The whole file.

    Returns:
        The parsed :class:`PriorFile`.

    Raises:
        FormatError: Any violation (subclasses as for streams: ``BadSignatureError``,
            ``UnsupportedVersionError``, ``ChecksumError``, ``TruncatedError``,
            ``UnknownCriticalChunkError``, ``FieldRangeError``).
    """
    container = read_container(data, signature=PRIOR_SIGNATURE)
    by_type = {c.ctype: c for c in container.chunks}
    skipped = {c.ctype for c in container.skipped}
    header = PriorHeader.unpack(by_type[b"PHDR"].data)
    for ctype in (b"ARCH", b"PTEN"):
        if ctype not in by_type:
            raise FormatError(f"prior file has no {ctype.decode()} chunk")
    arch = unpack_arch(header.arch, by_type[b"ARCH"].data)
    tensors = unpack_tensors(by_type[b"PTEN"].data, header.n_tensors)
    optional: dict[bytes, Optional[Chunk]] = {}
    for ctype, flag, what in ((b"pLRS", FLAG_LRS, "bit 0 (Meta-SGD step sizes)"), (b"pMSK", FLAG_MASKS, "bit 1 (masks)")):
        name = ctype.decode()
        chunk = by_type.get(ctype)
        if header.flags & flag and chunk is None:
            damaged = " (it is damaged: CRC mismatch)" if ctype in skipped else ""
            raise FormatError(f"PHDR.flags={header.flags} has {what} set but the file has no {name} chunk{damaged}")
        if chunk is not None and not header.flags & flag:
            raise FormatError(f"chunk {name} at offset {chunk.offset} but PHDR.flags={header.flags} lacks {what}")
        optional[ctype] = chunk
    lrs = masks = None
    if optional[b"pLRS"] is not None:
        lrs = unpack_lrs(optional[b"pLRS"].data, sum(t.count for t in tensors))
    if optional[b"pMSK"] is not None:
        masks = unpack_masks(optional[b"pMSK"].data, [t.count for t in tensors])
        for i, (m, t) in enumerate(zip(masks, tensors)):
            if t.symbols[~m].any():
                k = int(np.flatnonzero(t.symbols * ~m)[0])
                raise FormatError(f"PTEN tensor {i}: value {k} is masked out by pMSK but its symbol is "
                                  f"{int(t.symbols[k])}, must be 0")
    meta = _meta(by_type[b"meTA"].data) if b"meTA" in by_type else {}
    extra = tuple(c for c in container.chunks if c.ctype not in PRIOR_CHUNK_TYPES)
    return PriorFile(container.version, header, arch, tensors, lrs, masks, meta, extra, container.nbytes)
