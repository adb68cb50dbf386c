"""Describe a stream without decoding it (``nfc info``): container, NHDR and ARCH only.

Nothing here imports torch or runs the entropy decoder, so probing is cheap and safe on
untrusted files.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .chunktypes import describe_chunk_type
from .container import Chunk, Container, read_container
from .errors import FormatError, TruncatedError
from .fields import Record
from .headers import ARCHS, StreamHeader, unpack_arch

__all__ = ["ChunkInfo", "StreamInfo", "probe", "describe"]


@dataclass(frozen=True)
class ChunkInfo:
    """One chunk as listed by ``nfc info``.

    Attributes:
        ctype: The type, e.g. ``"TDAT"``.
        offset: File offset of the chunk's length field.
        length: Data bytes (the chunk occupies 12 more).
        critical: Whether the type is critical.
        description: One line from the chunk-type registry; skipped chunks say so.
    """

    ctype: str
    offset: int
    length: int
    critical: bool
    description: str


@dataclass(frozen=True)
class StreamInfo:
    """What a file contains, read from its container, NHDR and ARCH.

    Attributes:
        version: ``(major, minor)`` of the file.
        header: The stream header.
        arch: The architecture record (its class depends on ``header.arch``).
        chunks: Every chunk in file order, CRC-skipped ancillary ones included.
        nbytes: Size of the data probed (the file size).
        truncated: The data ends before ``NEND`` (lenient probing only).
    """

    version: tuple[int, int]
    header: StreamHeader
    arch: Record
    chunks: tuple[ChunkInfo, ...]
    nbytes: int
    truncated: bool

    @property
    def pixels(self) -> int:
        """Pixels in the whole stream: frames × width × height."""
        return self.header.frames * self.header.width * self.header.height

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file, container overhead included."""
        return 8 * self.nbytes / self.pixels

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description (``nfc info --json``)."""
        return {
            "version": list(self.version),
            "nbytes": self.nbytes,
            "truncated": self.truncated,
            "pixels": self.pixels,
            "bpp": self.bpp,
            "header": self.header.as_dict(),
            "arch": {"name": ARCHS[self.header.arch], **self.arch.as_dict()},
            "chunks": [asdict(c) for c in self.chunks],
        }


def _chunk_info(chunk: Chunk, skipped: bool) -> ChunkInfo:
    description = describe_chunk_type(chunk.ctype)
    if skipped:
        description = f"skipped (CRC mismatch): {description}"
    return ChunkInfo(chunk.name, chunk.offset, len(chunk.data), chunk.critical, description)


def probe(data: bytes, *, allow_truncated: bool = False) -> StreamInfo:
    """Read a stream's description.

    Args:
        data: The whole file.
        allow_truncated: Accept a file cut after its ARCH chunk (see ``read_container``).

    Returns:
        The stream description.

    Raises:
        TruncatedError: The file is cut (strict), or cut before ARCH (lenient).
        FormatError: Any container error, or a missing or malformed NHDR / ARCH.
    """
    return describe(read_container(data, allow_truncated=allow_truncated), len(data))


def describe(container: Container, nbytes: int) -> StreamInfo:
    """The description of an already-parsed container of ``nbytes`` bytes (what :func:`probe` returns).

    Raises:
        TruncatedError, FormatError: as :func:`probe`, for a missing or malformed NHDR / ARCH.
    """
    by_type = {c.ctype: c for c in reversed(container.chunks)}  # first occurrence wins
    if b"NHDR" not in by_type or b"ARCH" not in by_type:
        missing = "NHDR" if b"NHDR" not in by_type else "ARCH"
        error = TruncatedError if container.truncated else FormatError
        raise error(f"stream has no {missing} chunk" + (" before the cut" if container.truncated else ""))
    header = StreamHeader.unpack(by_type[b"NHDR"].data)
    arch = unpack_arch(header.arch, by_type[b"ARCH"].data)
    listed = [(c, False) for c in container.chunks] + [(c, True) for c in container.skipped]
    chunks = tuple(_chunk_info(c, s) for c, s in sorted(listed, key=lambda item: item[0].offset))
    return StreamInfo(container.version, header, arch, chunks, nbytes, container.truncated)
