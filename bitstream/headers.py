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
    "GROWINGS",
    "MAX_LEVELS",
    "GrowRecord",
    "StreamHeader",
    "SirenArch",
    "NervArch",
    "NERV_SLOTS",
    "NERV_ACTIVATIONS",
    "NERV_CROPS",
    "GridArch",
    "GridVideoArch",
    "GRID_ACTIVATIONS",
    "GRID_UPSAMPLING",
    "GRID_MAX_LEVELS",
    "SegmentHeader",
    "SeedRecord",
    "PriorRef",
    "TransformRecord",
    "ARCH_RECORDS",
    "register_arch_record",
    "unpack_arch",
    "CHUNK_RECORDS",
    "TileRecord",
    "TILE_SIDES",
    "MAX_TILES",
]

#: Refuse absurd frame sizes before anyone allocates a frame buffer.
MAX_FRAME_PIXELS = 2**26

MEDIA: Mapping[int, str] = MappingProxyType({0: "image", 1: "video"})
ARCHS: Mapping[int, str] = MappingProxyType({0: "siren", 1: "nerv", 2: "grid", 3: "grid-video"})
REPRESENTATIONS: Mapping[int, str] = MappingProxyType({0: "dense", 1: "pruned", 2: "supermask"})
LAYOUTS: Mapping[int, str] = MappingProxyType({0: "single", 1: "width-chunks", 2: "tiles"})
COLORSPACES: Mapping[int, str] = MappingProxyType({0: "RGB"})
SEGMENT_KINDS: Mapping[int, str] = MappingProxyType({0: "whole", 1: "width", 2: "frames"})
RNGS: Mapping[int, str] = MappingProxyType({0: "philox4x64-10"})
NERV_ACTIVATIONS: Mapping[int, str] = MappingProxyType({0: "gelu"})
NERV_CROPS: Mapping[int, str] = MappingProxyType({0: "top-left"})
GRID_ACTIVATIONS: Mapping[int, str] = MappingProxyType({0: "gelu"})
GRID_UPSAMPLING: Mapping[int, str] = MappingProxyType({0: "bilinear"})
#: Most latent levels of a grid stream.
GRID_MAX_LEVELS = 12
TRANSFORMS: Mapping[int, str] = MappingProxyType({0: "identity", 1: "permute", 2: "gamma"})
GROWINGS: Mapping[int, str] = MappingProxyType({0: "spectral", 1: "spatial", 2: "temporal"})
#: Most levels a width-chunks stream may have.
MAX_LEVELS = 64

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


#: Number of NeRV block slots in the NeRV ARCH record (unused slots are trailing zeros).
NERV_SLOTS = 6


def _nerv_slot_fields() -> tuple[Field, ...]:
    fields: list[Field] = []
    for i in range(NERV_SLOTS):
        fields.append(Field(f"factor{i}", "B", 0, 8, f"block {i} upscale factor (0: slot unused)"))
        fields.append(Field(f"channels{i}", "H", 0, 4096, f"block {i} output channels (0: slot unused)"))
    return tuple(fields)


@register_arch_record(1)
@dataclass(frozen=True)
class NervArch(Record):
    """``ARCH`` for NeRV (``NHDR.arch`` = 1): frame index -> RGB frame (35 bytes).

    ``t = k / NHDR.frames`` -> PE(b, l) (2l values) -> Linear(2l, mlp_hidden) -> act ->
    Linear(mlp_hidden, c1*h0*w0) -> act -> reshape (c1, h0, w0) -> blocks
    [conv k x k to channels*f^2, PixelShuffle(f), act] -> conv head_kernel to 3 -> crop.
    The padded output is ``h0*P x w0*P`` (P: product of the factors); it MUST cover the frame
    (``h0*P >= height``, ``w0*P >= width``, checked by the decoder against NHDR), and the frame
    is its ``crop`` window (top-left: rows [0, height), columns [0, width)).
    """

    NAME = "ARCH"
    ARCH_ID: ClassVar[int]
    FIELDS = (
        Field("pe_b", "f", 1.0, 4.0, "positional-encoding base b"),
        Field("pe_l", "B", 1, 128, "positional-encoding levels l (2l features)"),
        Field("mlp_hidden", "H", 1, 4096, "hidden units of the 2-layer MLP"),
        Field("c1", "H", 1, 4096, "channels of the base feature map"),
        Field("h0", "H", 1, 4096, "base feature map height"),
        Field("w0", "H", 1, 4096, "base feature map width"),
        Field("kernel", "B", 1, 7, "convolution kernel size of the blocks (odd)"),
        Field("head_kernel", "B", 1, 7, "convolution kernel size of the RGB head (odd)"),
        enum_field("act", NERV_ACTIVATIONS, "activation of the MLP and the blocks"),
        enum_field("crop", NERV_CROPS, "where the frame sits in the padded output"),
        *_nerv_slot_fields(),
    )

    pe_b: float
    pe_l: int
    mlp_hidden: int
    c1: int
    h0: int
    w0: int
    kernel: int
    head_kernel: int
    act: int
    crop: int
    factor0: int
    channels0: int
    factor1: int
    channels1: int
    factor2: int
    channels2: int
    factor3: int
    channels3: int
    factor4: int
    channels4: int
    factor5: int
    channels5: int

    @property
    def blocks(self) -> tuple[tuple[int, int], ...]:
        """``(factor, channels)`` of the used block slots, in order."""
        slots = ((getattr(self, f"factor{i}"), getattr(self, f"channels{i}")) for i in range(NERV_SLOTS))
        return tuple((f, c) for f, c in slots if f)

    @property
    def upscale(self) -> int:
        """Product of the block upscale factors."""
        p = 1
        for f, _ in self.blocks:
            p *= f
        return p

    @property
    def padded_size(self) -> tuple[int, int]:
        """``(height, width)`` of the network's output before cropping."""
        return self.h0 * self.upscale, self.w0 * self.upscale

    def validate(self) -> None:
        """Odd kernels; used slots first, each with channels; bounded MLP output and padded frame."""
        for name in ("kernel", "head_kernel"):
            if getattr(self, name) % 2 == 0:
                raise FieldRangeError(f"ARCH.{name}={getattr(self, name)} must be odd")
        used = True
        for i in range(NERV_SLOTS):
            f, c = getattr(self, f"factor{i}"), getattr(self, f"channels{i}")
            if f and not used:
                raise FieldRangeError(f"ARCH.factor{i}={f} after an unused slot (used slots come first)")
            if (f == 0) != (c == 0):
                raise FieldRangeError(f"ARCH.factor{i}={f} with ARCH.channels{i}={c}: both or neither must be 0")
            used = used and f != 0
        if not self.blocks:
            raise FieldRangeError("ARCH.factor0=0: NeRV needs at least one block")
        if self.c1 * self.h0 * self.w0 > 2**24:
            raise FieldRangeError(f"ARCH: c1*h0*w0 = {self.c1 * self.h0 * self.w0} exceeds 16777216")
        ph, pw = self.padded_size
        if ph * pw > 4 * MAX_FRAME_PIXELS:
            raise FieldRangeError(f"ARCH: padded output {pw}x{ph} exceeds {4 * MAX_FRAME_PIXELS} pixels")


@register_arch_record(2)
@dataclass(frozen=True)
class GridArch(Record):
    """``ARCH`` for the latent-grid field (``NHDR.arch`` = 2, format 2.4): 12 bytes.

    ``levels`` latent planes of ``ceil(H / 2^l) x ceil(W / 2^l)`` integers (l = 0 .. levels-1),
    each upsampled to the frame (``upsample``), stacked per pixel and fed to a synthesis MLP
    ``levels -> hidden1 [-> hidden2] -> 3`` (``act`` between layers; the last layer a
    ``head_kernel`` x ``head_kernel`` convolution over the hidden feature maps).  ``height``/``width``
    repeat NHDR's so that the record alone fixes every tensor shape.
    """

    NAME = "ARCH"
    ARCH_ID: ClassVar[int]
    FIELDS = (
        Field("height", "H", 1, _U16, "frame height (MUST equal NHDR.height)"),
        Field("width", "H", 1, _U16, "frame width (MUST equal NHDR.width)"),
        Field("levels", "B", 1, GRID_MAX_LEVELS, "latent levels (resolutions 1:1 .. 1:2^(levels-1))"),
        Field("hidden1", "H", 1, 256, "units of the first synthesis layer"),
        Field("hidden2", "H", 0, 256, "units of the second synthesis layer (0: none)"),
        enum_field("act", GRID_ACTIVATIONS, "activation of the hidden synthesis layers"),
        enum_field("upsample", GRID_UPSAMPLING, "latent upsampling kernel"),
        Field("head_kernel", "B", 1, 7, "kernel of the RGB layer (1: per pixel; odd k: a zero-padded k x k conv)"),
    )

    height: int
    width: int
    levels: int
    hidden1: int
    hidden2: int
    act: int
    upsample: int
    head_kernel: int

    def validate(self) -> None:
        """An odd head kernel."""
        if self.head_kernel % 2 == 0:
            raise FieldRangeError(f"ARCH.head_kernel={self.head_kernel} must be odd")

    @property
    def hidden(self) -> tuple[int, ...]:
        """The hidden widths of the synthesis, in order."""
        return (self.hidden1,) if self.hidden2 == 0 else (self.hidden1, self.hidden2)

    @property
    def latent_sizes(self) -> list[tuple[int, int]]:
        """``(rows, cols)`` of each latent level."""
        return [(-(-self.height // (1 << l)), -(-self.width // (1 << l))) for l in range(self.levels)]


@register_arch_record(3)
@dataclass(frozen=True)
class GridVideoArch(GridArch):
    """``ARCH`` for the video latent grid (``NHDR.arch`` = 3, format 2.9): 18 bytes.

    The grid of :class:`GridArch` over (t, x, y): level ``l`` holds ``ceil(T / 2^l)`` planes of
    ``ceil(H / 2^l) x ceil(W / 2^l)`` integers, upsampled by ``2^l`` along time as along rows and
    columns (trilinear), and the same per-pixel synthesis turns a frame's upsampled values into
    RGB.  ``frames`` repeats NHDR's so that the record alone fixes every tensor shape; ``tdelta``
    marks the levels whose volumes the file stores as differences between consecutive planes.
    """

    FIELDS = (*GridArch.FIELDS,
              Field("frames", "I", 1, 2**24, "frames (MUST equal NHDR.frames)"),
              Field("tdelta", "H", 0, 2**GRID_MAX_LEVELS - 1,
                    "bit l set: level l's planes are stored as differences along time"))

    frames: int = 1
    tdelta: int = 0

    def validate(self) -> None:
        """An odd head kernel; ``tdelta`` names existing levels only."""
        super().validate()
        if self.tdelta >> self.levels:
            raise FieldRangeError(f"ARCH.tdelta={self.tdelta:#x} names levels beyond levels={self.levels}")

    @property
    def latent_sizes(self) -> list[tuple[int, int, int]]:
        """``(planes, rows, cols)`` of each latent level."""
        return [(-(-self.frames // (1 << l)), -(-self.height // (1 << l)), -(-self.width // (1 << l)))
                for l in range(self.levels)]


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


#: Tile sides of the tiles layout: at least 8 pixels, at most 4096.
TILE_SIDES = (8, 4096)
#: Most tiles a stream may have.
MAX_TILES = 2**16


@dataclass(frozen=True)
class TileRecord(Record):
    """``TILE``: the tiles layout's tile size (4 bytes); tiles cover the frame row-major."""

    NAME = "TILE"
    FIELDS = (
        Field("tile_height", "H", TILE_SIDES[0], TILE_SIDES[1], "rows of a tile"),
        Field("tile_width", "H", TILE_SIDES[0], TILE_SIDES[1], "columns of a tile"),
    )

    tile_height: int
    tile_width: int


@dataclass(frozen=True)
class GrowRecord:
    """``GROW`` (width-chunks layout): how the stream grows, level by level (2 + 6 x levels bytes).

    Layout: ``growing`` u8 (:data:`GROWINGS`), ``levels`` u8 (1 .. :data:`MAX_LEVELS`), then per
    level ``width`` u16 (hidden units of the network after this level, strictly increasing,
    1 .. 4096) and ``cover`` u32: for spatial growing the columns ``[0, cover)`` the level
    reconstructs, for temporal growing the frames ``[0, cover)`` (both strictly increasing, at
    least 1); 0 for spectral growing (every level covers the whole signal).  The bounds against
    the frame size are checked by the layout, which knows NHDR.
    """

    NAME = "GROW"

    growing: int
    widths: tuple[int, ...]
    covers: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "covers", tuple(int(c) for c in self.covers))
        self.validate()

    @property
    def levels(self) -> int:
        return len(self.widths)

    def validate(self) -> None:
        if self.growing not in GROWINGS:
            raise FieldRangeError(f"GROW.growing={self.growing} unknown (known: {dict(GROWINGS)})")
        if not 1 <= len(self.widths) <= MAX_LEVELS or len(self.covers) != len(self.widths):
            raise FieldRangeError(f"GROW.levels={len(self.widths)} outside [1, {MAX_LEVELS}]")
        prev = 0
        for k, w in enumerate(self.widths):
            if not prev < w <= 4096:
                raise FieldRangeError(f"GROW.width[{k}]={w} must be in ({prev}, 4096]: widths grow strictly")
            prev = w
        if self.growing == 0:
            if any(self.covers):
                raise FieldRangeError("GROW.cover must be 0 for spectral growing")
            return
        prev = 0
        for k, c in enumerate(self.covers):
            if not prev < c <= _U32:
                raise FieldRangeError(f"GROW.cover[{k}]={c} must be > {prev}: the covered part grows strictly")
            prev = c

    def pack(self) -> bytes:
        import struct

        return bytes((self.growing, len(self.widths))) + b"".join(
            struct.pack("<HI", w, c) for w, c in zip(self.widths, self.covers))

    @classmethod
    def unpack(cls, data: bytes) -> "GrowRecord":
        import struct

        from .errors import FormatError

        if len(data) < 2 or len(data) != 2 + 6 * data[1]:
            n = data[1] if len(data) >= 2 else "?"
            raise FormatError(f"GROW: {len(data)} bytes for {n} levels (needs 2 + 6 x levels)")
        rows = [struct.unpack_from("<HI", data, 2 + 6 * k) for k in range(data[1])]
        return cls(data[0], tuple(r[0] for r in rows), tuple(r[1] for r in rows))

    def describe(self) -> list[tuple[str, str]]:
        return [("growing", GROWINGS.get(self.growing, str(self.growing))), ("levels", str(self.levels)),
                ("widths", ",".join(map(str, self.widths)))] + (
            [("covers", ",".join(map(str, self.covers)))] if self.growing else [])

    def as_dict(self) -> dict:
        return {"growing": GROWINGS.get(self.growing), "widths": list(self.widths), "covers": list(self.covers)}


#: Record class of each fixed-width chunk (ARCH depends on NHDR.arch: see unpack_arch).
CHUNK_RECORDS: Mapping[bytes, type[Record]] = MappingProxyType(
    {b"NHDR": StreamHeader, b"SEGM": SegmentHeader, b"SEED": SeedRecord, b"PRIR": PriorRef, b"XFRM": TransformRecord,
     b"TILE": TileRecord}
)
