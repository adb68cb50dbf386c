"""Schema-driven records and LEB128 varints."""
from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest

from nfcodec.bitstream import (
    ByteReader,
    Field,
    FieldRangeError,
    FormatError,
    Record,
    enum_field,
    read_uvarint,
    unzigzag,
    write_uvarint,
    zigzag,
)


@dataclass(frozen=True)
class Demo(Record):
    NAME = "DEMO"
    FIELDS = (
        enum_field("kind", {0: "a", 2: "c"}, "an enum with a gap"),
        Field("count", "H", 1, 1000, "a bounded u16"),
        Field("gain", "f", -1.0, 1.0, "a float32"),
        Field("tag", "4s", None, None, "fixed-length bytes"),
    )

    kind: int
    count: int
    gain: float
    tag: bytes


# --------------------------------------------------------------------------- records


def test_record_round_trip_and_layout():
    demo = Demo(kind=2, count=300, gain=0.1, tag=b"abcd")
    assert demo.pack() == b"\x02" + struct.pack("<H", 300) + struct.pack("<f", 0.1) + b"abcd"
    assert Demo.size() == 11
    assert Demo.unpack(demo.pack()) == demo  # the float was rounded to float32 on construction
    assert demo.describe() == [("kind", "2 (c)"), ("count", "300"), ("gain", "0.100000001"), ("tag", "61626364")]
    assert demo.as_dict() == {"kind": 2, "count": 300, "gain": demo.gain, "tag": "61626364"}


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"kind": 1}, r"DEMO\.kind=1 not in \{0: 'a', 2: 'c'\}"),
        ({"count": 0}, r"DEMO\.count=0 outside \[1, 1000\]"),
        ({"count": 1001}, r"DEMO\.count=1001 outside \[1, 1000\]"),
        ({"gain": 1.5}, r"DEMO\.gain=1\.5 outside \[-1\.0, 1\.0\]"),
        ({"gain": 1e300}, r"DEMO\.gain=1e\+300 outside"),
        ({"gain": float("inf")}, r"DEMO\.gain=inf outside"),
        ({"tag": b"abc"}, r"DEMO\.tag has 3 bytes, expected 4"),
    ],
)
def test_out_of_range_field_is_named(changes, match):
    fields = dict(kind=0, count=1, gain=0.0, tag=b"abcd") | changes
    with pytest.raises(FieldRangeError, match=match):
        Demo(**fields)


def test_unpack_checks_ranges_and_length():
    with pytest.raises(FieldRangeError, match=r"DEMO\.gain=nan outside"):
        Demo.unpack(b"\x00\x01\x00" + struct.pack("<f", float("nan")) + b"abcd")
    with pytest.raises(FieldRangeError, match=r"DEMO\.count=0 outside"):
        Demo.unpack(b"\x00\x00\x00" + struct.pack("<f", 0.0) + b"abcd")
    with pytest.raises(FormatError, match="DEMO: 10 bytes, expected 11"):
        Demo.unpack(bytes(10))


@pytest.mark.parametrize("changes", [{"count": "3"}, {"gain": "x"}, {"tag": "abcd"}, {"count": 1.0}])
def test_wrong_python_type_is_api_misuse(changes):
    with pytest.raises(TypeError, match="DEMO"):
        Demo(**(dict(kind=0, count=1, gain=0.0, tag=b"abcd") | changes))


# --------------------------------------------------------------------------- varints


@pytest.mark.parametrize(
    "n, encoded",
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (2**32, "8080808010"),
        (2**63, "80808080808080808001"),
        (2**64 - 1, "ffffffffffffffffff01"),
    ],
)
def test_uvarint_edges(n, encoded):
    assert write_uvarint(n).hex() == encoded
    assert read_uvarint(b"\xaa" + bytes.fromhex(encoded) + b"\xbb", 1) == (n, 1 + len(encoded) // 2)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "data ends inside varint"),
        (b"\x80", "data ends inside varint"),
        (b"\xff" * 9, "data ends inside varint"),
        (b"\x80" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\xff" * 9 + b"\x02", "exceeds 18446744073709551615"),
        (b"\x80\x00", "non-canonical"),
    ],
)
def test_bad_uvarint(data, match):
    with pytest.raises(FormatError, match=f"count at offset 0: .*{match}"):
        read_uvarint(data, 0, "count")


@pytest.mark.parametrize("n", [-1, 2**64])
def test_uvarint_range(n):
    with pytest.raises(ValueError, match="outside"):
        write_uvarint(n)


@pytest.mark.parametrize("n, z", [(0, 0), (-1, 1), (1, 2), (-2, 3), (2**63 - 1, 2**64 - 2), (-(2**63), 2**64 - 1)])
def test_zigzag(n, z):
    assert zigzag(n) == z and unzigzag(z) == n


def test_zigzag_range():
    with pytest.raises(ValueError, match="outside"):
        zigzag(2**63)


def test_byte_reader_names_what_it_reads():
    reader = ByteReader(b"\x05\x01\x02", "tensor 2")
    assert (reader.uvarint("n"), reader.u8("step"), reader.remaining) == (5, 1, 1)
    with pytest.raises(FormatError, match=r"tensor 2 words at offset 2: needs 4 bytes, 1 left"):
        reader.take(4, "words")
