"""nfcodec.bitstream: the ``.nfc`` file format, readable without torch.

Layers, bottom up:

* :mod:`.container` -- signature, version, CRC-protected chunks (the byte-level spec).
* :mod:`.chunktypes` -- registry of chunk types (critical / once / description).
* :mod:`.fields` and :mod:`.headers` -- schema-driven fixed-width records (NHDR, ARCH ...).
* :mod:`.entropy` -- constriction coding of quantized integer tensors (TDAT / SCAL).
* :mod:`.masks` -- coding of binary keep masks (MASK), each with its smallest coder.
* :mod:`.probe` -- a file's description from NHDR + ARCH, without decoding.

This package MUST NOT import torch (``tests/bitstream/test_no_torch.py`` checks it).
"""
from __future__ import annotations

from .chunktypes import CHUNK_TYPES, ChunkType, describe_chunk_type, is_critical
from .container import (
    FORMAT_VERSION,
    FORMAT_VERSIONS,
    MAX_CHUNK_LENGTH,
    SIGNATURE,
    Chunk,
    Container,
    iter_chunks,
    pack_chunk,
    read_container,
    write_container,
)
from .entropy import (
    ENTROPY_MODELS,
    MAX_ALPHABET,
    CodedTensor,
    EntropyModel,
    decode_tensors,
    encode_tensors,
    laplace_counts,
    tensor_report,
)
from .errors import (
    BadSignatureError,
    BitstreamError,
    ChecksumError,
    ChunkError,
    FieldRangeError,
    FormatError,
    TruncatedError,
    UnknownCriticalChunkError,
    UnsupportedVersionError,
)
from .fields import (
    MAX_UVARINT,
    ByteReader,
    Field,
    Record,
    enum_field,
    read_uvarint,
    unzigzag,
    write_uvarint,
    zigzag,
)
from .headers import (
    ARCH_RECORDS,
    ARCHS,
    CHUNK_RECORDS,
    COLORSPACES,
    GROWINGS,
    GrowRecord,
    LAYOUTS,
    MAX_FRAME_PIXELS,
    MEDIA,
    REPRESENTATIONS,
    RNGS,
    SEGMENT_KINDS,
    TRANSFORMS,
    PriorRef,
    SeedRecord,
    SegmentHeader,
    NervArch,
    SirenArch,
    StreamHeader,
    TransformRecord,
    register_arch_record,
    unpack_arch,
)
from .masks import MASK_CODERS, CodedMask, MaskCoder, decode_masks, encode_masks, mask_report
from .probe import ChunkInfo, StreamInfo, probe

__all__ = [
    # errors
    "BitstreamError", "FormatError", "BadSignatureError", "UnsupportedVersionError",
    "UnknownCriticalChunkError", "FieldRangeError", "ChunkError", "ChecksumError", "TruncatedError",
    # container
    "SIGNATURE", "FORMAT_VERSION", "FORMAT_VERSIONS", "MAX_CHUNK_LENGTH", "Chunk", "Container",
    "pack_chunk", "write_container", "read_container", "iter_chunks",
    # chunk types
    "ChunkType", "CHUNK_TYPES", "is_critical", "describe_chunk_type",
    # fields
    "Field", "Record", "enum_field", "ByteReader", "MAX_UVARINT", "write_uvarint", "read_uvarint",
    "zigzag", "unzigzag",
    # headers
    "MAX_FRAME_PIXELS", "MEDIA", "ARCHS", "REPRESENTATIONS", "LAYOUTS", "COLORSPACES", "SEGMENT_KINDS",
    "RNGS", "TRANSFORMS", "GROWINGS", "GrowRecord", "StreamHeader", "SirenArch", "NervArch", "SegmentHeader", "SeedRecord", "PriorRef",
    "TransformRecord", "ARCH_RECORDS", "register_arch_record", "unpack_arch", "CHUNK_RECORDS",
    # entropy
    "MAX_ALPHABET", "CodedTensor", "EntropyModel", "ENTROPY_MODELS", "laplace_counts",
    "encode_tensors", "decode_tensors", "tensor_report",
    # masks
    "MASK_CODERS", "CodedMask", "MaskCoder", "encode_masks", "decode_masks", "mask_report",
    # probe
    "ChunkInfo", "StreamInfo", "probe",
]
