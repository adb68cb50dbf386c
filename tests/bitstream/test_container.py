"""Attack the container: truncation at every offset, a flipped byte everywhere, bad sequences."""
from __future__ import annotations

import struct

import pytest

from nfcodec.bitstream import (
    MAX_CHUNK_LENGTH,
    SIGNATURE,
    BadSignatureError,
    ChecksumError,
    Chunk,
    FormatError,
    TruncatedError,
    UnknownCriticalChunkError,
    UnsupportedVersionError,
    iter_chunks,
    pack_chunk,
    read_container,
    write_container,
)


def _splice(chunks: list[Chunk], at: int, extra: Chunk) -> bytes:
    """A file with ``extra`` inserted before ``chunks[at]``, bypassing the writer's checks."""
    body = [pack_chunk(c) for c in chunks]
    body.insert(at, pack_chunk(extra))
    return SIGNATURE + b"\x01\x00" + b"".join(body)


def _ends(data: bytes) -> list[int]:
    """End offset of every chunk of a valid file."""
    return [c.offset + len(c.data) + 12 for c in read_container(data).chunks]


# --------------------------------------------------------------------------- round trip


def test_round_trip(chunks, data):
    container = read_container(data)
    assert container.chunks == tuple(chunks)
    assert (container.version, container.truncated, container.skipped) == ((2, 9), False, ())
    assert container.nbytes == len(data)
    assert [c.offset for c in container.chunks] == [10, *_ends(data)[:-1]]
    assert [(c.name, c.critical) for c in container.chunks][:3] == [("NHDR", True), ("ARCH", True), ("meTA", False)]


def test_chunk_layout_is_length_type_data_crc():
    # zlib.crc32(b"NEND") == 0x3395583b, stored little-endian
    assert pack_chunk(Chunk(b"NEND", b"")) == bytes.fromhex("00000000" "4e454e44" "3b589533")
    assert pack_chunk(Chunk(b"meTA", b"x"))[:9] == b"\x01\x00\x00\x00meTAx"


def test_iter_chunks_walks_every_chunk(chunks, data):
    assert [chunk for chunk, crc_ok in iter_chunks(data)] == chunks


# --------------------------------------------------------------------------- truncation


def test_truncation_at_every_offset_strict(data):
    for cut in range(len(data)):
        with pytest.raises(TruncatedError):
            read_container(data[:cut])


def test_truncation_at_every_offset_lenient(chunks, data):
    ends = _ends(data)
    for cut in range(10, len(data)):
        container = read_container(data[:cut], allow_truncated=True)
        whole = sum(end <= cut for end in ends)
        assert container.truncated
        assert container.chunks == tuple(chunks[:whole])
        assert container.nbytes == ([10] + ends)[whole]


def test_truncation_inside_signature_raises_even_when_lenient(data):
    with pytest.raises(TruncatedError, match="signature"):
        read_container(data[:9], allow_truncated=True)


def test_truncation_message_names_chunk_and_sizes(chunks, data):
    tdat = read_container(data).chunks[4]
    inside = rf"inside chunk TDAT at offset {tdat.offset} \(needs {len(tdat.data) + 12} bytes, 20 left\)"
    with pytest.raises(TruncatedError, match=inside):
        read_container(data[: tdat.offset + 20])
    in_header = rf"inside a chunk header at offset {tdat.offset} \(needs 8 bytes, 5 left\)"
    with pytest.raises(TruncatedError, match=in_header):
        read_container(data[: tdat.offset + 5])
    with pytest.raises(TruncatedError, match="before NEND"):
        read_container(data[:-12])


# --------------------------------------------------------------------------- corruption


def _regions(data: bytes) -> dict[int, tuple[Chunk, str]]:
    """Map every byte offset inside a chunk to (chunk, region name)."""
    where = {}
    for chunk in read_container(data).chunks:
        start, n = chunk.offset, len(chunk.data)
        spans = {"length": (0, 4), "type": (4, 8), "data": (8, 8 + n), "crc": (8 + n, 12 + n)}
        for region, (a, b) in spans.items():
            where.update({start + i: (chunk, region) for i in range(a, b)})
    return where


def test_flip_every_byte(chunks, data):
    regions = _regions(data)
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        chunk, region = regions.get(pos, (None, "preamble"))
        if pos < 8:
            with pytest.raises(BadSignatureError):
                read_container(bytes(bad))
        elif pos == 8:
            with pytest.raises(UnsupportedVersionError):
                read_container(bytes(bad))
        elif pos == 9:  # a higher minor version is readable
            assert read_container(bytes(bad)).chunks == tuple(chunks)
        elif region in ("data", "crc") and chunk.critical:
            with pytest.raises(ChecksumError, match=f"chunk {chunk.name} at offset {chunk.offset}: CRC mismatch"):
                read_container(bytes(bad), allow_truncated=True)  # corruption is never truncation
        elif region in ("data", "crc"):
            container = read_container(bytes(bad))
            assert [c.ctype for c in container.skipped] == [chunk.ctype]
            assert container.chunks == tuple(c for c in chunks if c != chunk)
        else:  # length or type: the chunk structure itself is broken
            with pytest.raises(FormatError):
                read_container(bytes(bad))


def test_case_bit_of_critical_type_is_covered_by_crc(data):
    bad = bytearray(data)
    bad[10 + 4] ^= 0x01  # NHDR -> OHDR: still critical, CRC no longer matches
    with pytest.raises(FormatError):
        read_container(bytes(bad))


# --------------------------------------------------------------------------- unknown and bad chunks


def test_unknown_ancillary_chunk_is_kept(chunks):
    extra = Chunk(b"zzZZ", b"future stuff")
    container = read_container(_splice(chunks, 3, extra))
    assert container.chunks == (*chunks[:3], extra, *chunks[3:])


def test_unknown_critical_chunk_is_rejected(chunks):
    with pytest.raises(UnknownCriticalChunkError, match="chunk ZZZZ at offset"):
        read_container(_splice(chunks, 3, Chunk(b"ZZZZ", b"")))


def test_bad_chunk_type(chunks):
    data = bytearray(_splice(chunks, 3, Chunk(b"ZZZZ", b"")))
    offset = read_container(write_container(chunks)).chunks[3].offset
    data[offset + 4 : offset + 8] = b"Z1ZZ"
    with pytest.raises(FormatError, match="not 4 ASCII letters"):
        read_container(bytes(data))


def test_oversize_length_rejected_before_reading(data):
    offset = 10 + 12 + 25  # the ARCH chunk, right after NHDR
    bad = data[:offset] + struct.pack("<I", MAX_CHUNK_LENGTH + 1) + data[offset + 4 :]
    with pytest.raises(FormatError, match=f"length={MAX_CHUNK_LENGTH + 1} exceeds"):
        read_container(bad, allow_truncated=True)


@pytest.mark.parametrize("head", [b"\x89PNG\r\n\x1a\n\x01\x00", b"GIF89a", b"\x89NFC\n\x1a\n"])
def test_wrong_magic(head, data):
    with pytest.raises(BadSignatureError, match="not an nfc file"):
        read_container(head + data[10:] if len(head) == 10 else head)


def test_future_major_version_rejected(data):
    with pytest.raises(UnsupportedVersionError, match=r"version 3\.0 not supported \(this reader reads major versions 1, 2\)"):
        read_container(data[:8] + b"\x03\x00" + data[10:])


def test_both_majors_are_read(chunks):
    assert read_container(write_container(chunks, version=(1, 0))).version == (1, 0)
    assert read_container(write_container(chunks)).version == (2, 9)


def test_higher_minor_version_accepted(chunks):
    assert read_container(write_container(chunks, version=(1, 7))).version == (1, 7)


@pytest.mark.parametrize("dup, at", [(0, 1), (1, 2), (2, 4)])  # NHDR, ARCH, meTA twice
def test_duplicate_once_chunk(chunks, dup, at):
    with pytest.raises(FormatError, match=f"{chunks[dup].name} may appear only once"):
        read_container(_splice(chunks, at, chunks[dup]))


def test_first_chunk_must_be_nhdr(chunks):
    with pytest.raises(FormatError, match="first chunk must be NHDR"):
        read_container(_splice(chunks[1:], 0, Chunk(b"meTA", b"")))


def test_data_after_nend(data):
    with pytest.raises(FormatError, match="1 bytes after NEND"):
        read_container(data + b"\x00")


def test_nend_must_be_empty(chunks):
    body = SIGNATURE + b"\x01\x00" + b"".join(pack_chunk(c) for c in chunks[:-1])
    with pytest.raises(FormatError, match="NEND.length=1"):
        read_container(body + pack_chunk(Chunk(b"NEND", b"x")))


# --------------------------------------------------------------------------- writer misuse


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c[1:], "start with NHDR"),
        (lambda c: c[:-1], "end with NEND"),
        (lambda c: c[:-1] + [Chunk(b"NEND", b"x")], "NEND must be empty"),
        (lambda c: c[:2] + c[1:], "ARCH may appear only once"),
        (lambda c: c[:2] + [Chunk(b"ZZZZ", b"")] + c[2:], "unknown critical chunk type ZZZZ"),
    ],
)
def test_writer_refuses_invalid_sequences(chunks, edit, match):
    with pytest.raises(ValueError, match=match) as info:
        write_container(edit(chunks))
    assert not isinstance(info.value, FormatError)  # API misuse, not a bad file


@pytest.mark.parametrize("ctype", [b"NHD", b"NHD1", "NHDR", b"NH R"])
def test_chunk_type_must_be_four_letters(ctype):
    with pytest.raises(ValueError, match="4 ASCII letters"):
        Chunk(ctype, b"")


def test_writer_refuses_unknown_major(chunks):
    with pytest.raises(ValueError, match="cannot write version 3.0"):
        write_container(chunks, version=(3, 0))
