"""The v1 records: golden bytes, ranges, cross-field rules, the ARCH registry."""
from __future__ import annotations

import dataclasses
import struct

import pytest

from nfcodec.bitstream import (
    ARCH_RECORDS,
    CHUNK_RECORDS,
    FieldRangeError,
    FormatError,
    PriorRef,
    SeedRecord,
    SegmentHeader,
    SirenArch,
    StreamHeader,
    TransformRecord,
    register_arch_record,
    unpack_arch,
)

VIDEO = StreamHeader(
    media=1, width=1920, height=1080, frames=300, fps_num=30000, fps_den=1001, channels=3, bit_depth=8,
    colorspace=0, arch=0, representation=2, layout=1, n_segments=4,
)
SIREN = SirenArch(in_features=3, out_features=3, width=64, depth=3, w0_first=30.0, w0_hidden=1.5)
RECORDS = [
    VIDEO,
    SIREN,
    SegmentHeader(index=2, kind=2, start=10, stop=20),
    SeedRecord(rng=0, seed=2**64 - 1),
    PriorRef(digest=bytes(range(32))),
    TransformRecord(transform=0, param=7),
]


def test_golden_stream_header():
    golden = (
        "01"  # media video
        "8007" "3804"  # 1920 x 1080
        "2c010000"  # 300 frames
        "30750000" "e9030000"  # 30000 / 1001 fps
        "03" "08" "00"  # channels, bit depth, RGB
        "00" "02" "01"  # siren, supermask, width-chunks
        "0400"  # 4 segments
    )
    assert VIDEO.pack().hex() == golden
    assert StreamHeader.unpack(bytes.fromhex(golden)) == VIDEO


def test_golden_siren_arch():
    golden = "03" "03" "4000" "03" "0000f041" "0000c03f"  # 3 -> 3, width 64, depth 3, 30.0, 1.5
    assert SIREN.pack().hex() == golden
    assert unpack_arch(0, bytes.fromhex(golden)) == SIREN


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.NAME)
def test_round_trip(record):
    assert type(record).unpack(record.pack()) == record
    assert len(record.pack()) == record.size()


@pytest.mark.parametrize("cls", [*CHUNK_RECORDS.values(), *ARCH_RECORDS.values()], ids=lambda c: c.__name__)
def test_schema_matches_dataclass(cls):
    assert [f.name for f in cls.FIELDS] == [f.name for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("media", 2, r"NHDR\.media=2 not in"),
        ("width", 0, r"NHDR\.width=0 outside \[1, 65535\]"),
        ("height", 65536, r"NHDR\.height=65536 outside \[1, 65535\]"),
        ("frames", 2**24 + 1, r"NHDR\.frames=16777217 outside \[1, 16777216\]"),
        ("fps_num", 2**31, r"NHDR\.fps_num=2147483648 outside"),
        ("fps_den", 0, r"NHDR\.fps_den=0 outside"),
        ("channels", 4, r"NHDR\.channels=4 outside \[3, 3\]"),
        ("bit_depth", 10, r"NHDR\.bit_depth=10 outside \[8, 8\]"),
        ("colorspace", 1, r"NHDR\.colorspace=1 not in"),
        ("arch", 7, r"NHDR\.arch=7 not in"),
        ("representation", 3, r"NHDR\.representation=3 not in"),
        ("layout", 3, r"NHDR\.layout=3 not in"),
        ("n_segments", 0, r"NHDR\.n_segments=0 outside"),
    ],
)
def test_stream_header_field_ranges(field, value, match):
    with pytest.raises(FieldRangeError, match=match):
        dataclasses.replace(VIDEO, **{field: value})


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("in_features", 1, r"ARCH\.in_features=1 outside \[2, 3\]"),
        ("out_features", 5, r"ARCH\.out_features=5 outside \[1, 4\]"),
        ("width", 4097, r"ARCH\.width=4097 outside \[1, 4096\]"),
        ("depth", 0, r"ARCH\.depth=0 outside \[1, 64\]"),
        ("w0_first", 0.0, r"ARCH\.w0_first=0\.0 outside \[0\.001, 10000\.0\]"),
        ("w0_hidden", float("nan"), r"ARCH\.w0_hidden=nan outside"),
    ],
)
def test_siren_arch_field_ranges(field, value, match):
    with pytest.raises(FieldRangeError, match=match):
        dataclasses.replace(SIREN, **{field: value})


def test_billion_pixel_frame_refused_on_unpack():
    data = bytearray(VIDEO.pack())
    data[1:5] = struct.pack("<HH", 40000, 25000)  # 10**9 pixels: refused before any allocation
    message = "NHDR: 40000x25000 = 1000000000 pixels per frame exceeds the limit of 67108864"
    with pytest.raises(FieldRangeError, match=message):
        StreamHeader.unpack(bytes(data))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"media": 0}, r"NHDR\.frames=300 for an image, must be 1"),
        ({"layout": 0}, r"NHDR\.n_segments=4 with layout single, must be 1"),
    ],
)
def test_stream_header_cross_field_rules(changes, match):
    with pytest.raises(FieldRangeError, match=match):
        dataclasses.replace(VIDEO, **changes)


def test_describe_names_enums():
    described = dict(VIDEO.describe())
    assert (described["media"], described["representation"], described["layout"]) == (
        "1 (video)", "2 (supermask)", "1 (width-chunks)",
    )


@pytest.mark.parametrize(
    "kind, start, stop, match",
    [
        (0, 0, 5, r"kind whole, must be 0, 0"),
        (1, 5, 5, r"SEGM\.start=5 must be < SEGM\.stop=5"),
        (3, 0, 1, r"SEGM\.kind=3 not in"),
    ],
)
def test_segment_header_rules(kind, start, stop, match):
    with pytest.raises(FieldRangeError, match=match):
        SegmentHeader(index=0, kind=kind, start=start, stop=stop)


def test_prior_digest_must_be_32_bytes():
    with pytest.raises(FieldRangeError, match=r"PRIR\.digest has 31 bytes, expected 32"):
        PriorRef(digest=bytes(31))


def test_unknown_arch_id_names_nhdr_arch():
    with pytest.raises(FieldRangeError, match=r"NHDR\.arch=7 has no ARCH record"):
        unpack_arch(7, SIREN.pack())
    with pytest.raises(FormatError, match="ARCH: 12 bytes, expected 13"):
        unpack_arch(0, SIREN.pack()[:-1])


def test_arch_registry_refuses_reuse():
    assert ARCH_RECORDS[0] is SirenArch and SirenArch.ARCH_ID == 0
    with pytest.raises(ValueError, match="already registered"):
        register_arch_record(0)(SirenArch)
