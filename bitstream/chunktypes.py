"""Registry of the chunk types of format version 1.

One entry per type, declared once here and read by the container reader (which types may
appear only once, which critical types exist), by ``nfc info`` and by ``docs/format.md``.

Whether a chunk is *critical* is not a registry property: it is encoded in the type itself
(bit 5 of the first byte clear, i.e. an uppercase first letter, the PNG rule), so a reader
knows how to treat a chunk it has never heard of.  The table is designed for the whole
roadmap: pruned and supermask representations, width-chunk / frame-group segments, shared
priors and data transforms each have their chunk already, so adding those features later
adds *content*, never a new critical type that would break v1 readers.

Rules for extending it: a new critical type needs a new minor version at least (old readers
reject it, which is the point); a new ancillary type (lowercase first letter) can be added
at any time.  Types, once shipped, are never reused with another meaning.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

__all__ = ["ChunkType", "CHUNK_TYPES", "is_critical", "describe_chunk_type"]


def is_critical(ctype: bytes) -> bool:
    """Tell whether a chunk type is critical (PNG rule: bit 5 of the first byte is 0).

    Args:
        ctype: A 4-byte chunk type.

    Returns:
        True for critical types (uppercase first letter), False for ancillary ones.
    """
    return not ctype[0] & 0x20


@dataclass(frozen=True)
class ChunkType:
    """What the format says about one chunk type.

    Attributes:
        ctype: The 4 ASCII letters of the type.
        once: The chunk may appear at most once in a stream.
        description: One line for ``nfc info`` and the docs.
    """

    ctype: bytes
    once: bool
    description: str

    @property
    def critical(self) -> bool:
        """Whether a reader that does not understand this chunk must reject the file."""
        return is_critical(self.ctype)

    @property
    def name(self) -> str:
        """The type as a string, e.g. ``"NHDR"``."""
        return self.ctype.decode("ascii")


_TYPES = (
    ChunkType(b"NHDR", True, "stream header (StreamHeader): media, size, frames, arch, representation, layout"),
    ChunkType(b"ARCH", True, "architecture record, selected by NHDR.arch"),
    ChunkType(b"SEGM", False, "starts a segment (SegmentHeader): whole stream, width chunk or frame group"),
    ChunkType(b"TDAT", False, "entropy-coded quantized tensors of the current segment"),
    ChunkType(b"MASK", False, "entropy-coded binary masks: pruned keep masks, or nested supermask levels"),
    ChunkType(b"SEED", False, "SeedRecord: generator id and seed of frozen random weights"),
    ChunkType(b"SCAL", False, "supermask level scales: levels, fractional bits, one integer per level"),
    ChunkType(b"PRIR", True, "PriorRef: SHA-256 of a shared meta-learned prior the weights are coded against"),
    ChunkType(b"XFRM", True, "invertible data transform applied before fitting (id + parameter)"),
    ChunkType(b"GROW", True, "GrowRecord: growing mode and each level's width and coverage (width-chunks layout)"),
    ChunkType(b"TILE", True, "TileRecord: tile height and width (tiles layout)"),
    ChunkType(b"pSNR", True, "the encoder's PSNR of each level, u16 per level in 0.01 dB (width-chunks; skippable)"),
    ChunkType(b"meTA", True, "UTF-8 JSON: encoder name/version, settings, metrics (skippable)"),
    ChunkType(b"NEND", True, "empty; marks a complete stream"),
)

#: Every chunk type this reader knows, by its 4-byte type.
CHUNK_TYPES: Mapping[bytes, ChunkType] = MappingProxyType({t.ctype: t for t in _TYPES})


def describe_chunk_type(ctype: bytes) -> str:
    """One-line description of a chunk type, including types this reader does not know.

    Args:
        ctype: A 4-byte chunk type.

    Returns:
        The registry description, or a note saying the type is unknown.
    """
    known = CHUNK_TYPES.get(ctype)
    if known is not None:
        return known.description
    return f"unknown {'critical' if is_critical(ctype) else 'ancillary'} chunk"
