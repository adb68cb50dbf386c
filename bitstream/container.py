"""The nfcodec container: a signature, a version and a sequence of CRC-protected chunks.

This docstring is the normative byte-level specification of the container (``docs/format.md``
repeats it with examples and describes the chunk contents).  The key words MUST, MUST NOT,
SHOULD and MAY are used as in RFC 2119.

Layout
------
All integers are little-endian.  A file is::

    offset  size  field
    0       8     signature   b"\\x89NFC\\r\\n\\x1a\\n"
    8       1     major       format major version (u8)
    9       1     minor       format minor version (u8)
    10      ...   chunk*      zero or more chunks, each:
                    4   length   u32, number of data bytes (MUST be <= 2**31 - 1)
                    4   type     4 ASCII letters [A-Za-z]
                    n   data     ``length`` bytes
                    4   crc      u32, zlib.crc32 over type + data

The signature follows PNG: the high-bit byte catches 7-bit channels and the CR LF / LF pair
catches newline translation.

Chunk rules
-----------
* A chunk type is *critical* iff bit 5 of its first byte is 0 (uppercase first letter).
* The first chunk MUST be ``NHDR`` and the last MUST be ``NEND`` (with empty data); each of
  them, and every other type the registry (:mod:`.chunktypes`) marks "once", MUST NOT
  appear more than once.  Nothing MAY follow ``NEND``.
* A reader MUST reject a chunk whose type is not 4 ASCII letters, or whose length exceeds
  ``MAX_CHUNK_LENGTH``; it MUST check the length before reading or allocating anything.
* A reader MUST reject an unknown critical chunk, and MUST ignore (keep, not interpret) an
  unknown ancillary chunk.
* A CRC mismatch in a complete critical chunk is corruption: the reader MUST reject the file
  even when it tolerates truncation.  An ancillary chunk with a CRC mismatch SHOULD be
  skipped.
* Data that ends inside a chunk, or before ``NEND``, is truncated.  A strict reader MUST
  reject it.  A lenient reader MAY use the whole, CRC-valid chunks before the cut, and MUST
  NOT hand a cut-off chunk onward (an entropy decoder cannot detect the end of its words).
* A writer SHOULD put ``ARCH`` right after ``NHDR`` so that a probe reads only the front.

Versions
--------
A reader MUST reject a major version it does not know and MUST accept any minor version of
a major it knows (this module reads majors 1 and 2; it writes 2.9): minor versions only add
ancillary chunks, new table entries (ids whose
absence old readers report as a field-range error) or new critical chunks that old readers
reject by the unknown-critical rule.

==========  ======================================================================
version     change
==========  ======================================================================
1.0         initial format: NHDR ARCH SEGM TDAT MASK SEED SCAL PRIR XFRM meTA NEND
2.0         same container and payloads; the decoding arithmetic is normative and
            exact (docs/format.md section 6), so 1.x readers must not decode 2.x
2.1         supermask representation (2): SEED, nested MASK and SCAL payloads and the
            frozen-weight generator (docs/format.md sections 4.3, 4a, 5d, 6.7)
2.2         width-chunks layout (1): GROW chunk, one SEGM + payload per level, every
            prefix decodes its last complete level (docs/format.md section 4b)
2.3         tiles layout (2): TILE chunk, one network per tile; PRIR: weights coded as
            residuals from a shared prior; XFRM: invertible data transforms (section 4c)
==========  ======================================================================

Other container families
------------------------
The same framing carries other files with their own signature: a :class:`ContainerFormat` names
the signature, the versions, the first chunk type and the chunk-type table, and
:func:`register_container_format` makes ``write_container`` / ``read_container`` accept its
signature through their ``signature=`` keyword (prior files, :mod:`.priorfile`, register
``b"\\x89NFP\\r\\n\\x1a\\n"`` with first chunk ``PHDR``).  Every rule above holds for each family,
with its own first chunk and table in place of ``NHDR`` and :mod:`.chunktypes`.  A signature
is 8 bytes and the preamble 10 bytes in every family.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Optional, Union

from .chunktypes import CHUNK_TYPES, ChunkType, is_critical
from .errors import (
    BadSignatureError,
    ChecksumError,
    FormatError,
    TruncatedError,
    UnknownCriticalChunkError,
    UnsupportedVersionError,
)

__all__ = [
    "SIGNATURE",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "MAX_CHUNK_LENGTH",
    "Chunk",
    "Container",
    "ContainerFormat",
    "STREAM_FORMAT",
    "register_container_format",
    "pack_chunk",
    "write_container",
    "read_container",
    "iter_chunks",
]

SIGNATURE = b"\x89NFC\r\n\x1a\n"
#: The version this writer produces.
FORMAT_VERSION = (2, 9)
#: Every released version and what it changed (a table, not branches in the reader).
FORMAT_VERSIONS = {
    (1, 0): "initial format; pixels from a float32 renderer (platform-dependent)",
    (2, 0): "exact decoding arithmetic: the pixels are a function of the file (same container and payloads)",
    (2, 1): "supermask representation (2): SEED, nested-mask MASK and SCAL payloads; frozen random weights",
    (2, 2): "width-chunks layout (1): GROW chunk, one SEGM + payload per level; every prefix decodes",
    (2, 3): "tiles layout (2): TILE chunk, one network per tile; PRIR: weights coded as residuals from a prior; XFRM transforms",
    (2, 4): "latent-grid architecture (2); checkerboard entropy model (4) for latent planes",
    (2, 5): "causal entropy model (5): latent planes coded autoregressively in wavefronts",
    (2, 6): "causal4 entropy model (6): the causal prediction kept to the quarter, four tables per bin",
    (2, 7): "arm entropy model (7): latent planes coded with an integer context network shared by a payload's records",
    (2, 8): "width-chunks layout (1) for the latent grid (2): latent planes stored coarse to fine, one segment per level",
    (2, 9): "video latent grid architecture (3): latent volumes over (t, y, x), upsampled trilinearly",
}
#: Major versions this module reads.
READ_MAJORS = frozenset(v[0] for v in FORMAT_VERSIONS)
#: pypng's bound: keeps a corrupt length field from asking for gigabytes.
MAX_CHUNK_LENGTH = 2**31 - 1

_PREAMBLE = len(SIGNATURE) + 2
_LEN_TYPE = struct.Struct("<I4s")
_CRC = struct.Struct("<I")
_OVERHEAD = _LEN_TYPE.size + _CRC.size  # 12 bytes around every chunk's data
_FIRST, _LAST = b"NHDR", b"NEND"


def _is_letters(ctype: bytes) -> bool:
    return len(ctype) == 4 and all(0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A for c in ctype)


@dataclass(frozen=True)
class ContainerFormat:
    """One family of files sharing the container framing (streams, prior files ...).

    Attributes:
        name: What the files are called in messages (``"not an nfc file: ..."``).
        signature: The 8 signature bytes.
        versions: Every released ``(major, minor)`` and what it changed.
        version: The version the writer produces by default.
        first: The type of the mandatory first chunk (the header).
        chunk_types: The chunk types this reader knows (unknown critical types are rejected;
            ``once`` types may appear at most once).
        label: What the version is of, in messages (``"format version 3.0 not supported"``).
        last: The type of the mandatory (empty) last chunk.
    """

    name: str
    signature: bytes
    versions: Mapping[tuple[int, int], str]
    version: tuple[int, int]
    first: bytes
    chunk_types: Mapping[bytes, ChunkType]
    label: str = "format"
    last: bytes = _LAST

    def __post_init__(self) -> None:
        if len(self.signature) != len(SIGNATURE):
            raise ValueError(f"a container signature has {len(SIGNATURE)} bytes, got {self.signature!r}")
        if not _is_letters(self.first) or not _is_letters(self.last):
            raise ValueError(f"first/last chunk types must be 4 ASCII letters, got {self.first!r}, {self.last!r}")
        if self.version not in self.versions:
            raise ValueError(f"default version {self.version} is not in the version table")
        for ctype in (self.first, self.last):
            known = self.chunk_types.get(ctype)
            if known is None or not known.once or not known.critical:
                raise ValueError(f"chunk type {ctype!r} must be in the table as a critical 'once' type")

    @property
    def majors(self) -> frozenset[int]:
        """Major versions this module reads."""
        return frozenset(v[0] for v in self.versions)


#: The ``.nfc`` stream family (the default of every function here).
STREAM_FORMAT = ContainerFormat("nfc file", SIGNATURE, FORMAT_VERSIONS, FORMAT_VERSION, _FIRST, CHUNK_TYPES)
_FORMATS: dict[bytes, ContainerFormat] = {SIGNATURE: STREAM_FORMAT}


def register_container_format(fmt: ContainerFormat) -> ContainerFormat:
    """Make ``fmt.signature`` accepted by the ``signature=`` keyword of the functions here.

    Args:
        fmt: The family; registering an equal one again is a no-op (module reloads).

    Returns:
        ``fmt``.

    Raises:
        ValueError: Another family has the same signature.
    """
    known = _FORMATS.get(fmt.signature)
    if known is not None and known != fmt:
        raise ValueError(f"container signature {fmt.signature!r} already registered for {known.name}")
    _FORMATS[fmt.signature] = fmt
    return fmt


def _format(signature: bytes) -> ContainerFormat:
    """The registered family of ``signature`` (API misuse: ValueError)."""
    try:
        return _FORMATS[signature]
    except (KeyError, TypeError):
        raise ValueError(f"no container format registered for signature {signature!r}") from None


@dataclass(frozen=True)
class Chunk:
    """One chunk of a container.

    Attributes:
        ctype: The 4-letter type, e.g. ``b"TDAT"``.
        data: The chunk's data (without length, type and CRC).
        offset: File offset of the chunk's length field; set by the reader, -1 otherwise,
            and ignored by ``==``.

    Raises:
        ValueError: ``ctype`` is not 4 ASCII letters.
    """

    ctype: bytes
    data: bytes
    offset: int = field(default=-1, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.ctype, bytes) or not _is_letters(self.ctype):
            raise ValueError(f"chunk type must be 4 ASCII letters, got {self.ctype!r}")
        object.__setattr__(self, "data", bytes(self.data))

    @property
    def critical(self) -> bool:
        """Whether a reader that does not know this type must reject the file."""
        return is_critical(self.ctype)

    @property
    def name(self) -> str:
        """The type as a string, e.g. ``"TDAT"``."""
        return self.ctype.decode("ascii")


@dataclass(frozen=True)
class Container:
    """A parsed container.

    Attributes:
        version: ``(major, minor)`` read from the file.
        chunks: The chunks to interpret, in file order: every complete chunk with a valid
            CRC, unknown ancillary ones included (callers ignore what they do not know).
        truncated: True if the data ended before ``NEND`` (lenient reading only).
        skipped: Ancillary chunks dropped because of a CRC mismatch.
        nbytes: Bytes parsed: the end offset of the last whole chunk (the file size for a
            complete file).
    """

    version: tuple[int, int]
    chunks: tuple[Chunk, ...]
    truncated: bool
    skipped: tuple[Chunk, ...]
    nbytes: int


# --------------------------------------------------------------------------- writing


def pack_chunk(chunk: Chunk) -> bytes:
    """Serialize one chunk: length, type, data and CRC-32 over type + data.

    Args:
        chunk: The chunk to serialize.

    Returns:
        The chunk's bytes.

    Raises:
        ValueError: The data is longer than ``MAX_CHUNK_LENGTH``.
    """
    if len(chunk.data) > MAX_CHUNK_LENGTH:
        raise ValueError(f"chunk {chunk.name}: {len(chunk.data)} bytes exceeds {MAX_CHUNK_LENGTH}")
    crc = zlib.crc32(chunk.data, zlib.crc32(chunk.ctype))
    return _LEN_TYPE.pack(len(chunk.data), chunk.ctype) + chunk.data + _CRC.pack(crc)


def _check_sequence(chunks: list[Chunk], fmt: ContainerFormat = STREAM_FORMAT) -> None:
    """Refuse to write a chunk sequence that :func:`read_container` would reject."""
    first, last = fmt.first.decode("ascii"), fmt.last.decode("ascii")
    if not chunks or chunks[0].ctype != fmt.first or chunks[-1].ctype != fmt.last:
        names = [c.name for c in chunks]
        raise ValueError(f"chunks must start with {first} and end with {last}, got {names}")
    if chunks[-1].data:
        raise ValueError(f"{last} must be empty")
    seen: set[bytes] = set()
    for chunk in chunks:
        known = fmt.chunk_types.get(chunk.ctype)
        if chunk.critical and known is None:
            raise ValueError(f"unknown critical chunk type {chunk.name}")
        if known is not None and known.once and chunk.ctype in seen:
            raise ValueError(f"chunk {chunk.name} may appear only once")
        seen.add(chunk.ctype)


def write_container(chunks: Iterable[Chunk], *, version: Optional[tuple[int, int]] = None,
                    signature: bytes = SIGNATURE) -> bytes:
    """Build a container from chunks.

    Args:
        chunks: The chunks in file order; the first MUST be ``NHDR`` (the family's first type),
            the last ``NEND``.
        version: ``(major, minor)`` to write; the major must be one this module reads (default:
            the family's current version, :data:`FORMAT_VERSION` for streams).
        signature: Selects the family (a registered :class:`ContainerFormat`; default: streams).

    Returns:
        The file's bytes.

    Raises:
        ValueError: The sequence breaks a container rule (first/last chunk, duplicates,
            unknown critical type, oversize chunk) or the version is not writable.
    """
    fmt = _format(signature)
    major, minor = fmt.version if version is None else version
    if major not in fmt.majors or not 0 <= minor <= 255:
        raise ValueError(f"cannot write version {major}.{minor}")
    chunk_list = list(chunks)
    _check_sequence(chunk_list, fmt)
    return b"".join([fmt.signature, bytes((major, minor)), *map(pack_chunk, chunk_list)])


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Cut:
    """The data ends inside a chunk or before NEND (an error only in strict mode)."""

    message: str


def _read_preamble(data: bytes, fmt: ContainerFormat = STREAM_FORMAT) -> tuple[int, int]:
    """Check signature and version; return ``(major, minor)``."""
    sig = fmt.signature
    head = bytes(data[:_PREAMBLE])
    if len(head) < _PREAMBLE:
        if sig.startswith(head[: len(sig)]):
            raise TruncatedError(f"file ends inside the signature/version ({len(head)} of {_PREAMBLE} bytes)")
        raise BadSignatureError(f"not an {fmt.name}: signature {head[: len(sig)]!r} != {sig!r}")
    if head[: len(sig)] != sig:
        raise BadSignatureError(f"not an {fmt.name}: signature {head[: len(sig)]!r} != {sig!r}")
    major, minor = head[8], head[9]
    if major not in fmt.majors:
        known = ", ".join(str(m) for m in sorted(fmt.majors))
        raise UnsupportedVersionError(
            f"{fmt.label} version {major}.{minor} not supported (this reader reads major versions {known})")
    return major, minor


def _read_chunk(data: memoryview, pos: int) -> Union[tuple[Chunk, bool], _Cut]:
    """Read the chunk at ``pos``; return ``(chunk, crc_ok)`` or a :class:`_Cut`.

    Bounds are checked before anything is sliced, so a corrupt length never allocates.
    """
    left = len(data) - pos
    if left < _LEN_TYPE.size:
        return _Cut(f"file ends inside a chunk header at offset {pos} (needs {_LEN_TYPE.size} bytes, {left} left)")
    length, ctype = _LEN_TYPE.unpack_from(data, pos)
    if not _is_letters(ctype):
        raise FormatError(f"chunk at offset {pos}: type {ctype!r} is not 4 ASCII letters")
    name = ctype.decode("ascii")
    if length > MAX_CHUNK_LENGTH:
        raise FormatError(f"chunk {name} at offset {pos}: length={length} exceeds {MAX_CHUNK_LENGTH}")
    if left < length + _OVERHEAD:
        return _Cut(f"file ends inside chunk {name} at offset {pos} (needs {length + _OVERHEAD} bytes, {left} left)")
    body = data[pos + 4 : pos + 8 + length]  # type + data, what the CRC covers
    (stored,) = _CRC.unpack_from(data, pos + 8 + length)
    computed = zlib.crc32(body)
    if computed != stored and is_critical(ctype):
        raise ChecksumError(
            f"chunk {name} at offset {pos}: CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})", pos
        )
    return Chunk(ctype, bytes(body[4:]), offset=pos), computed == stored


def iter_chunks(data: bytes, pos: int = _PREAMBLE) -> Iterator[tuple[Chunk, bool]]:
    """Walk the chunks of a container without applying the sequence rules.

    Useful for tools that dump damaged files.  Stops quietly at a cut-off chunk.

    Args:
        data: The whole file.
        pos: Offset of the first chunk (default: right after signature and version).

    Yields:
        ``(chunk, crc_ok)`` for every complete chunk (critical chunks always have
        ``crc_ok=True``: a mismatch raises).

    Raises:
        FormatError: A chunk has a bad type or an oversize length.
        ChecksumError: A complete critical chunk has a CRC mismatch.
    """
    view = memoryview(data)
    while pos < len(view):
        item = _read_chunk(view, pos)
        if isinstance(item, _Cut):
            return
        yield item
        pos += len(item[0].data) + _OVERHEAD


def _check_chunk(chunk: Chunk, first: bool, seen: set[bytes], fmt: ContainerFormat = STREAM_FORMAT) -> None:
    """Apply the sequence rules to one CRC-valid chunk."""
    where = f"chunk {chunk.name} at offset {chunk.offset}"
    if chunk.ctype == fmt.first and not first:
        raise FormatError(f"{where}: {chunk.name} may appear only once, as the first chunk")
    known = fmt.chunk_types.get(chunk.ctype)
    if known is None:
        if chunk.critical:
            raise UnknownCriticalChunkError(f"{where}: unknown critical chunk type")
        return
    if known.once and chunk.ctype in seen:
        raise FormatError(f"{where}: {chunk.name} may appear only once")
    seen.add(chunk.ctype)
    if chunk.ctype == fmt.last and chunk.data:
        raise FormatError(f"{where}: {chunk.name}.length={len(chunk.data)}, must be 0")


def read_container(data: bytes, *, allow_truncated: bool = False, signature: bytes = SIGNATURE) -> Container:
    """Parse and check a container.

    Args:
        data: The whole file.
        allow_truncated: Return the whole, CRC-valid chunks before a cut (``truncated=True``)
            instead of raising :class:`TruncatedError`.
        signature: Selects the family (a registered :class:`ContainerFormat`; default: streams,
            whose first chunk is ``NHDR``; the rules below name the stream's types).

    Returns:
        The parsed :class:`Container`.

    Raises:
        TruncatedError: The data ends inside the signature/version (always), or inside a
            chunk or before ``NEND`` (strict mode).
        BadSignatureError: The data does not start with :data:`SIGNATURE`.
        UnsupportedVersionError: The major version is not 1.
        ChecksumError: A complete critical chunk has a CRC mismatch.
        UnknownCriticalChunkError: A critical chunk type is not in the registry.
        FormatError: Any other broken rule (bad type, oversize length, NHDR not first,
            duplicate, non-empty NEND, bytes after NEND).
    """
    fmt = _format(signature)
    version = _read_preamble(data, fmt)
    view = memoryview(data)
    chunks: list[Chunk] = []
    skipped: list[Chunk] = []
    seen: set[bytes] = set()
    pos, first = _PREAMBLE, True
    last = fmt.last.decode("ascii")
    while fmt.last not in seen:
        item = _read_chunk(view, pos) if pos < len(view) else _Cut(f"file ends at offset {pos} before {last}")
        if isinstance(item, _Cut):
            if not allow_truncated:
                raise TruncatedError(item.message)
            return Container(version, tuple(chunks), True, tuple(skipped), pos)
        chunk, crc_ok = item
        if first and chunk.ctype != fmt.first:  # even a skippable chunk cannot come first
            raise FormatError(f"chunk {chunk.name} at offset {pos}: the first chunk must be {fmt.first.decode('ascii')}")
        if crc_ok:
            _check_chunk(chunk, first, seen, fmt)
            chunks.append(chunk)
        else:
            skipped.append(chunk)
        pos, first = pos + len(chunk.data) + _OVERHEAD, False
    if pos != len(view):
        raise FormatError(f"{len(view) - pos} bytes after {last} at offset {pos}")
    return Container(version, tuple(chunks), False, tuple(skipped), pos)
