"""probe(): a file's description from its container, NHDR and ARCH."""
from __future__ import annotations

import json

import pytest

from nfcodec.bitstream import (
    Chunk,
    FormatError,
    SirenArch,
    StreamHeader,
    TruncatedError,
    probe,
    read_container,
    write_container,
)


def test_probe_describes_the_stream(chunks, data):
    info = probe(data)
    header, arch = StreamHeader.unpack(chunks[0].data), SirenArch.unpack(chunks[1].data)
    assert (info.version, info.header, info.arch) == ((2, 9), header, arch)
    assert (info.nbytes, info.truncated) == (len(data), False)
    assert (info.pixels, info.bpp) == (128, 8 * len(data) / 128)
    assert [(c.ctype, c.critical) for c in info.chunks] == [
        ("NHDR", True), ("ARCH", True), ("meTA", False), ("SEGM", True), ("TDAT", True), ("NEND", True),
    ]
    assert [c.offset for c in info.chunks] == [c.offset for c in read_container(data).chunks]
    assert info.chunks[4].description.startswith("entropy-coded quantized tensors")


def test_as_dict_is_json(chunks, data):
    described = json.loads(json.dumps(probe(data).as_dict()))
    assert described["arch"] == {"name": "siren", **SirenArch.unpack(chunks[1].data).as_dict()}
    assert described["header"]["width"] == 16 and described["chunks"][0]["ctype"] == "NHDR"


def test_probe_lists_skipped_chunks(data):
    meta = read_container(data).chunks[2]
    bad = bytearray(data)
    bad[meta.offset + 8] ^= 0xFF
    assert probe(bytes(bad)).chunks[2].description.startswith("skipped (CRC mismatch)")


def test_probe_truncated_stream(data):
    cut = read_container(data).chunks[3].offset + 3  # inside SEGM, after ARCH
    with pytest.raises(TruncatedError):
        probe(data[:cut])
    info = probe(data[:cut], allow_truncated=True)
    assert info.truncated and [c.ctype for c in info.chunks] == ["NHDR", "ARCH", "meTA"]
    with pytest.raises(TruncatedError, match="no ARCH chunk before the cut"):
        probe(data[: 10 + 12 + 25 + 5], allow_truncated=True)  # NHDR + 5 bytes


def test_probe_needs_arch(chunks):
    with pytest.raises(FormatError, match="no ARCH chunk"):
        probe(write_container([chunks[0], Chunk(b"NEND", b"")]))
