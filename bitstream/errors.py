"""Exceptions raised while reading or writing nfcodec bitstreams.

Every error raised for *malformed data* derives from :class:`FormatError` (and so from
``ValueError``); API misuse (for example asking the writer to produce a file whose first
chunk is not ``NHDR``) raises a plain ``ValueError`` or ``TypeError`` instead, so callers can
tell a bad file from a bad call.  Messages are one line and name the chunk or field and the
offending value, e.g. ``"NHDR.width=0 outside [1, 65535]"``.

Hierarchy::

    BitstreamError
     └ FormatError (also ValueError)
        ├ BadSignatureError
        ├ UnsupportedVersionError
        ├ UnknownCriticalChunkError
        ├ FieldRangeError
        └ ChunkError
           ├ ChecksumError
           └ TruncatedError
"""
from __future__ import annotations

__all__ = [
    "BitstreamError",
    "FormatError",
    "BadSignatureError",
    "UnsupportedVersionError",
    "UnknownCriticalChunkError",
    "FieldRangeError",
    "ChunkError",
    "ChecksumError",
    "TruncatedError",
]


class BitstreamError(Exception):
    """Base class of every error raised by ``nfcodec.bitstream``."""


class FormatError(BitstreamError, ValueError):
    """The data is not a valid nfcodec bitstream (malformed, corrupt or cut short)."""


class BadSignatureError(FormatError):
    """The data does not start with the nfcodec signature: it is not an ``.nfc`` file."""


class UnsupportedVersionError(FormatError):
    """The file's major format version is not one this reader understands."""


class UnknownCriticalChunkError(FormatError):
    """A critical chunk of a type this reader does not know (it cannot be skipped safely)."""


class FieldRangeError(FormatError):
    """A header or record field lies outside its allowed range."""


class ChunkError(FormatError):
    """A chunk is damaged: its checksum is wrong or the data ends inside it."""


class ChecksumError(ChunkError):
    """The CRC-32 of a complete critical chunk does not match: the file is corrupt.

    Attributes:
        offset: file offset of the damaged chunk (-1 when unknown); a progressive stream
            decodes the levels that end before it.
    """

    def __init__(self, message: str, offset: int = -1) -> None:
        super().__init__(message)
        self.offset = offset


class TruncatedError(ChunkError):
    """The data ends inside a chunk or before the closing ``NEND`` chunk."""
