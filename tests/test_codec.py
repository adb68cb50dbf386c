"""End-to-end behaviour of the image codec through the library API."""
from __future__ import annotations

import hashlib
import math
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import nfcodec
from nfcodec.bitstream import (BadSignatureError, Chunk, ChecksumError, FieldRangeError, FormatError,
                               StreamHeader, TruncatedError, read_container, write_container)
from nfcodec.errors import UnsupportedFeatureError


def _rebuild(data: bytes, replace: dict[bytes, bytes]) -> bytes:
    """Re-write a container with some chunk payloads replaced (valid CRCs)."""
    chunks = [Chunk(c.ctype, replace.get(c.ctype, c.data)) for c in read_container(data).chunks]
    return write_container(chunks)


def test_closed_loop_reconstruction_is_what_decode_returns(tiny_image, tiny_encoded):
    r = tiny_encoded
    out = nfcodec.decode(r.data)
    assert out.image.dtype == np.uint8 and out.image.shape == (24, 32, 3)
    assert np.array_equal(out.image, r.reconstruction)


def test_reported_psnr_and_bpp_match_independent_computation(tiny_image, tiny_encoded):
    r = tiny_encoded
    decoded = nfcodec.decode(r.data).image.astype(np.float64)
    mse = np.mean((decoded - tiny_image.astype(np.float64)) ** 2)
    assert r.psnr == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    assert r.bpp == pytest.approx(8 * len(r.data) / (32 * 24), abs=1e-12)
    assert r.info.nbytes == len(r.data)


def test_quality_band_on_tiny_image(tiny_encoded):
    # 16x2 SIREN, 300 full-batch steps, 10-bit weights on a 32x24 photo crop: 26.5 dB, 738 bytes.
    assert 25.5 < tiny_encoded.psnr < 28.0
    assert 650 < len(tiny_encoded.data) < 850


def test_more_steps_and_bits_raise_quality(tiny_image, fast):
    lo = nfcodec.encode(tiny_image, config=fast.replace(steps=40, bits=6))
    hi = nfcodec.encode(tiny_image, config=fast.replace(steps=300, bits=10))
    assert hi.psnr > lo.psnr + 3
    assert len(hi.data) > len(lo.data)


def test_encoder_is_deterministic_on_cpu(tiny_image, tiny_encoded, fast):
    again = nfcodec.encode(tiny_image, config=fast)
    assert again.data == tiny_encoded.data


def test_decode_is_deterministic_across_processes(tiny_encoded, tmp_path):
    path = tmp_path / "t.nfc"
    path.write_bytes(tiny_encoded.data)
    here = hashlib.sha256(nfcodec.decode(path).image.tobytes()).hexdigest()
    code = ("import hashlib, nfcodec, sys; "
            "print(hashlib.sha256(nfcodec.decode(sys.argv[1]).image.tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


def test_meta_chunk_is_optional_and_ignored(tiny_image, tiny_encoded, fast):
    bare = nfcodec.encode(tiny_image, config=fast, metadata=False)
    assert [c.ctype for c in read_container(bare.data).chunks] == [b"NHDR", b"ARCH", b"TDAT", b"NEND"]
    assert len(bare.data) < len(tiny_encoded.data)
    assert np.array_equal(nfcodec.decode(bare.data).image, tiny_encoded.reconstruction)


def test_truncation_at_every_offset_is_refused(tiny_encoded):
    data = tiny_encoded.data
    for cut in range(len(data)):
        with pytest.raises((TruncatedError, BadSignatureError)):
            nfcodec.decode(data[:cut])


def test_byte_flip_in_every_chunk(tiny_encoded):
    data = tiny_encoded.data
    container = read_container(data)
    for chunk in container.chunks:
        # one byte in the data (or the type field for the empty NEND) and one in the CRC
        for pos in {chunk.offset + 8 + len(chunk.data) // 2 if chunk.data else chunk.offset + 5,
                    chunk.offset + 8 + len(chunk.data) + 1}:
            bad = bytearray(data)
            bad[pos] ^= 0x5A
            if chunk.critical:
                with pytest.raises(FormatError):
                    nfcodec.decode(bytes(bad))
            else:   # ancillary (meTA): skipped, the image is unchanged
                assert np.array_equal(nfcodec.decode(bytes(bad)).image, tiny_encoded.reconstruction)


def test_flipped_tdat_byte_is_a_checksum_error(tiny_encoded):
    data = bytearray(tiny_encoded.data)
    tdat = next(c for c in read_container(bytes(data)).chunks if c.ctype == b"TDAT")
    data[tdat.offset + 8 + 100] ^= 1
    with pytest.raises(ChecksumError, match="TDAT"):
        nfcodec.decode(bytes(data))


def test_absurd_dimensions_refused_before_allocating(tiny_encoded):
    header = StreamHeader.unpack(read_container(tiny_encoded.data).chunks[0].data)
    raw = bytearray(header.pack())
    struct.pack_into("<HH", raw, 1, 40000, 40000)           # width, height follow the media byte
    bad = _rebuild(tiny_encoded.data, {b"NHDR": bytes(raw)})
    with pytest.raises(FieldRangeError, match="pixels per frame exceeds"):
        nfcodec.decode(bad)
    with pytest.raises(FieldRangeError):
        nfcodec.probe(bad)


def test_single_stream_relabelled_width_chunks_is_refused(tiny_encoded):
    header = StreamHeader.unpack(read_container(tiny_encoded.data).chunks[0].data)
    import dataclasses

    bad = _rebuild(tiny_encoded.data, {b"NHDR": dataclasses.replace(header, layout=1).pack()})
    with pytest.raises(FormatError, match="a width-chunks stream needs one GROW chunk, found 0"):
        nfcodec.decode(bad)


def test_supermask_header_on_a_dense_payload_is_refused(tiny_encoded):
    header = StreamHeader.unpack(read_container(tiny_encoded.data).chunks[0].data)
    import dataclasses

    bad = _rebuild(tiny_encoded.data, {b"NHDR": dataclasses.replace(header, representation=2).pack()})
    with pytest.raises(UnsupportedFeatureError, match="critical chunk TDAT .* not used by a supermask stream"):
        nfcodec.decode(bad)


def test_architecture_mismatch_is_a_format_error(tiny_encoded):
    arch = read_container(tiny_encoded.data).chunks[1]
    import dataclasses

    from nfcodec.bitstream import SirenArch

    wider = dataclasses.replace(SirenArch.unpack(arch.data), width=17).pack()
    with pytest.raises(FormatError, match=r"TDAT tensor 0 has 32 values, the stream needs 34"):
        nfcodec.decode(_rebuild(tiny_encoded.data, {b"ARCH": wider}))


def test_missing_tdat_is_a_format_error(tiny_encoded):
    chunks = [c for c in read_container(tiny_encoded.data).chunks if c.ctype != b"TDAT"]
    with pytest.raises(FormatError, match="exactly one TDAT"):
        nfcodec.decode(write_container([Chunk(c.ctype, c.data) for c in chunks]))


def test_video_header_is_refused_clearly(tiny_encoded):
    import dataclasses

    header = StreamHeader.unpack(read_container(tiny_encoded.data).chunks[0].data)
    bad = _rebuild(tiny_encoded.data, {b"NHDR": dataclasses.replace(header, media=1).pack()})
    with pytest.raises(FormatError, match="video"):
        nfcodec.decode(bad)


def test_probe_reports_header_and_chunks(tiny_encoded):
    info = nfcodec.probe(tiny_encoded.data)
    assert (info.header.width, info.header.height, info.header.frames) == (32, 24, 1)
    assert info.arch.width == 16 and info.arch.depth == 2
    assert [c.ctype for c in info.chunks] == ["NHDR", "ARCH", "TDAT", "meTA", "NEND"]
    assert sum(c.length + 12 for c in info.chunks) + 10 == len(tiny_encoded.data)
    assert info.bpp == pytest.approx(tiny_encoded.bpp)


def test_container_overhead_is_small(tiny_encoded):
    info = nfcodec.probe(tiny_encoded.data)
    tdat = next(c for c in info.chunks if c.ctype == "TDAT")
    meta = next(c for c in info.chunks if c.ctype == "meTA")
    # signature+version (10) + 5 chunk frames (60) + NHDR (25) + ARCH (13)
    assert len(tiny_encoded.data) - tdat.length - meta.length == 108
    assert zlib.crc32(b"") == 0  # sanity: NEND's CRC covers only its type
