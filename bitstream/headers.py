"""The fixed-width records carried by the chunks (schemas in ``FIELDS``, see :mod:`.fields`).

Enumerations are wire ids with a name table; ids, once shipped, are never reused.  A record
for a new architecture registers itself with :func:`register_arch_record`.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, ClassVar, Mapping, TypeVar

from .errors import FieldRangeError
from .fields import Field, Record, enum_field

__all__ = [
    "MAX_FRAME_PIXELS",
    "MEDIA",
    "ARCHS",
    "REPRESENTATIONS",
    "LAYOUTS",
    "COLORSPACES",
    "SEGMENT_KINDS",
    "RNGS",
    "TRANSFORMS",
    "StreamHeader",
    "SirenArch",
    "SegmentHeader",
    "SeedRecord",
    "PriorRef",
    "TransformRecord",
    "ARCH_RECORDS",
    "register_arch_record",
    "unpack_arch",
    "CHUNK_RECORDS",
]

#: Refuse absurd frame sizes before anyone allocates a frame buffer.
MAX_FRAME_PIXELS = 2**26

MEDIA: Mapping[int, str] = MappingProxyType({0: "image", 1: "video"})
ARCHS: Mapping[int, str] = MappingProxyType({0: "siren", 1: "nerv"})
REPRESENTATIONS: Mapping[int, str] = MappingProxyType({0: "dense", 1: "pruned", 2: "supermask"})
LAYOUTS: Mapping[int, str] = MappingProxyType({0: "single", 1: "width-chunks"})
COLORSPACES: Mapping[int, str] = MappingProxyType({0: "RGB"})
SEGMENT_KINDS: Mapping[int, str] = MappingProxyType({0: "whole", 1: "width", 2: "frames"})
RNGS: Mapping[int, str] = MappingProxyType({0: "philox4x64-10"})
TRANSFORMS: Mapping[int, str] = MappingProxyType({0: "identity"})

_U16, _U32, _I31 = 2**16 - 1, 2**32 - 1, 2**31 - 1


@dataclass(frozen=True)
class StreamHeader(Record):
    """``NHDR``: what the stream contains and how it is organised (25 bytes)."""

    NAME = "NHDR"
    FIELDS = (
        enum_field("media", MEDIA, "image or video"),
        Field("width", "H", 1, _U16, "frame width in pixels"),
        Field("height", "H", 1, _U16, "frame height in pixels"),
        Field("frames", "I", 1, 2**24, "number of frames (1 for an image)"),
        Field("fps_num", "I", 0, _I31, "frame rate numerator (0: unknown / still image)"),
        Field("fps_den", "I", 1, _I31, "frame rate denominator"),
        Field("channels", "B", 3, 3, "colour channels"),
        Field("bit_depth", "B", 8, 8, "bits per sample of the reconstruction"),
        enum_field("colorspace", COLORSPACES, "colour space of the samples"),
        enum_field("arch", ARCHS, "network architecture; selects the ARCH record"),
        enum_field("representation", REPRESENTATIONS, "how the weights are represented"),
        enum_field("layout", LAYOUTS, "how the stream is split into segments"),
        Field("n_segments", "H", 1, _U16, "number of SEGM chunks in a complete stream"),
    )

    media: int
    width: int
    height: int
    frames: int
    fps_num: int
    fps_den: int
    channels: int
    bit_depth: int
    colorspace: int
    arch: int
    representation: int
    layout: int
    n_segments: int

    def validate(self) -> None:
        """Frame size limit; an image has one frame; a single layout has one segment."""
        pixels = self.width * self.height
        if pixels > MAX_FRAME_PIXELS:
            raise FieldRangeError(
                f"NHDR: {self.width}x{self.height} = {pixels} pixels per frame exceeds the limit of {MAX_FRAME_PIXELS}"
            )
        if self.media == 0 and self.frames != 1:
            raise FieldRangeError(f"NHDR.frames={self.frames} for an image, must be 1")
        if self.layout == 0 and self.n_segments != 1:
            raise FieldRangeError(f"NHDR.n_segments={self.n_segments} with layout single, must be 1")


# --------------------------------------------------------------------------- ARCH records

_ARCH_RECORDS: dict[int, type[Record]] = {}
#: ARCH record class by NHDR.arch wire id (read-only view; extend with the decorator).
ARCH_RECORDS: Mapping[int, type[Record]] = MappingProxyType(_ARCH_RECORDS)
A = TypeVar("A", bound=type[Record])


def register_arch_record(wire_id: int) -> Callable[[A], A]:
    """Class decorator: declare the ARCH record of architecture ``wire_id``.

    Args:
        wire_id: The architecture's id in ``NHDR.arch`` (a key of :data:`ARCHS`).

    Returns:
        The decorator; it sets ``ARCH_ID`` on the class.

    Raises:
        ValueError: The id is unknown or already taken.
    """

    def decorator(cls: A) -> A:
        if wire_id not in ARCHS or wire_id in _ARCH_RECORDS:
            raise ValueError(f"arch wire id {wire_id} unknown or already registered")
        cls.ARCH_ID = wire_id  # type: ignore[attr-defined]
        _ARCH_RECORDS[wire_id] = cls
        return cls

    return decorator


def unpack_arch(arch_id: int, data: bytes) -> Record:
    """Parse the ARCH chunk of a stream whose ``NHDR.arch`` is ``arch_id``.

    Args:
        arch_id: ``StreamHeader.arch``.
        data: The ARCH chunk's data.

    Returns:
        The architecture record.

    Raises:
        FieldRangeError: No record is registered for ``arch_id``, or a field is out of range.
        FormatError: ``data`` has the wrong length.
    """
    cls = _ARCH_RECORDS.get(arch_id)
    if cls is None:
        known = {k: ARCHS[k] for k in sorted(_ARCH_RECORDS)}
        raise FieldRangeError(f"NHDR.arch={arch_id} has no ARCH record in this reader (known: {known})")
    return cls.unpack(data)


@register_arch_record(0)
@dataclass(frozen=True)
class SirenArch(Record):
    """``ARCH`` for SIREN (``NHDR.arch`` = 0): an MLP with sine activations (13 bytes)."""

    NAME = "ARCH"
    ARCH_ID: ClassVar[int]
    FIELDS = (
        Field("in_features", "B", 2, 3, "input coordinates (2: x, y; 3: x, y, t)"),
        Field("out_features", "B", 1, 4, "output channels"),
        Field("width", "H", 1, 4096, "hidden layer width"),
        Field("depth", "B", 1, 64, "number of hidden sine layers"),
        Field("w0_first", "f", 0.001, 10000.0, "frequency factor of the first layer"),
        Field("w0_hidden", "f", 0.001, 10000.0, "frequency factor of the hidden layers"),
    )

    in_features: int
    out_features: int
    width: int
    depth: int
    w0_first: float
    w0_hidden: float


# --------------------------------------------------------------------------- segment-level records


@dataclass(frozen=True)
class SegmentHeader(Record):
    """``SEGM``: starts a segment; ``[start, stop)`` is a column or frame range (11 bytes)."""

    NAME = "SEGM"
    FIELDS = (
        Field("index", "H", 0, _U16, "segment number, 0-based"),
        enum_field("kind", SEGMENT_KINDS, "what [start, stop) counts"),
        Field("start", "I", 0, _U32, "first column / frame (0 for whole)"),
        Field("stop", "I", 0, _U32, "one past the last column / frame (0 for whole)"),
    )

    index: int
    kind: int
    start: int
    stop: int

    def validate(self) -> None:
        """A whole segment has no range; other kinds have a non-empty one."""
        if self.kind == 0 and (self.start, self.stop) != (0, 0):
            raise FieldRangeError(f"SEGM.start={self.start}, SEGM.stop={self.stop} for kind whole, must be 0, 0")
        if self.kind != 0 and self.start >= self.stop:
            raise FieldRangeError(f"SEGM.start={self.start} must be < SEGM.stop={self.stop}")


@dataclass(frozen=True)
class SeedRecord(Record):
    """``SEED``: generator and seed of frozen random weights (9 bytes)."""

    NAME = "SEED"
    FIELDS = (
        enum_field("rng", RNGS, "pseudo-random generator"),
        Field("seed", "Q", 0, 2**64 - 1, "generator seed"),
    )

    rng: int
    seed: int


@dataclass(frozen=True)
class PriorRef(Record):
    """``PRIR``: the shared prior the weights are coded against (32 bytes)."""

    NAME = "PRIR"
    FIELDS = (Field("digest", "32s", None, None, "SHA-256 of the prior file"),)

    digest: bytes


@dataclass(frozen=True)
class TransformRecord(Record):
    """``XFRM``: invertible transform applied to the data before fitting (5 bytes)."""

    NAME = "XFRM"
    FIELDS = (
        enum_field("transform", TRANSFORMS, "transform id"),
        Field("param", "I", 0, _U32, "transform parameter (meaning set by the transform)"),
    )

    transform: int
    param: int


#: Record class of each fixed-width chunk (ARCH depends on NHDR.arch: see unpack_arch).
CHUNK_RECORDS: Mapping[bytes, type[Record]] = MappingProxyType(
    {b"NHDR": StreamHeader, b"SEGM": SegmentHeader, b"SEED": SeedRecord, b"PRIR": PriorRef, b"XFRM": TransformRecord}
)
