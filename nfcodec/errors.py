"""Exceptions raised by nfcodec.

Format problems in a ``.nfc`` file come from :mod:`nfcodec.bitstream.errors`
(``BitstreamError`` and its subclasses, re-exported here); everything else the codec
refuses is an :class:`NFCodecError`.  The CLI turns both into one line and a non-zero exit.
"""
from __future__ import annotations

from .bitstream.errors import (  # noqa: F401  (re-exported)
    BadSignatureError,
    BitstreamError,
    ChecksumError,
    FieldRangeError,
    FormatError,
    TruncatedError,
    UnknownCriticalChunkError,
    UnsupportedVersionError,
)

__all__ = [
    "NFCodecError",
    "ConfigError",
    "InputError",
    "OutputExistsError",
    "IncompleteStreamError",
    "UnsupportedFeatureError",
    "LimitError",
    "BitstreamError",
    "FormatError",
    "BadSignatureError",
    "UnsupportedVersionError",
    "UnknownCriticalChunkError",
    "FieldRangeError",
    "ChecksumError",
    "TruncatedError",
]


class NFCodecError(Exception):
    """Base class of every error nfcodec raises on purpose (besides bitstream format errors)."""


class ConfigError(NFCodecError, ValueError):
    """An encoder setting is out of range or inconsistent (names the knob and the value)."""


class InputError(NFCodecError):
    """The input media is missing, unreadable or of an unsupported kind."""


class OutputExistsError(NFCodecError, FileExistsError):
    """The output path exists (and overwriting was not asked for) or is the input itself."""


class IncompleteStreamError(NFCodecError):
    """A truncated stream lacks what is needed to decode anything."""


class UnsupportedFeatureError(NFCodecError):
    """The file uses a wire id (architecture, representation, layout) this decoder lacks."""


class LimitError(NFCodecError):
    """Decoding the file would exceed a documented decoder limit (parameters, working memory,
    work per frame, pixels per byte or in-memory output size; see ``nfcodec.DecodeLimits``)."""
