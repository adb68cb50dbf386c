"""Bounds before allocation, and refusing what the decoder does not understand (issue 9)."""
from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

import nfcodec
from nfcodec.bitstream import (Chunk, NervArch, PriorRef, SeedRecord, SegmentHeader, SirenArch, StreamHeader,
                               TransformRecord, read_container, write_container)
from nfcodec.decoder import DecodeLimits, open_stream
from nfcodec.errors import LimitError, UnsupportedFeatureError

from nfc_testdata import GOLDEN

V2 = GOLDEN / "v2"


def _header(**kw) -> StreamHeader:
    base = dict(media=0, width=32, height=24, frames=1, fps_num=0, fps_den=1, channels=3, bit_depth=8, colorspace=0,
                arch=0, representation=0, layout=0, n_segments=1)
    return StreamHeader(**{**base, **kw})


def _file(header: StreamHeader, arch, *payload: Chunk) -> bytes:
    return write_container([Chunk(b"NHDR", header.pack()), Chunk(b"ARCH", arch.pack()), *payload, Chunk(b"NEND", b"")])


def _replace(data: bytes, **fields) -> bytes:
    chunks = read_container(data).chunks
    h = dataclasses.replace(StreamHeader.unpack(chunks[0].data), **fields)
    return write_container([Chunk(c.ctype, h.pack() if c.ctype == b"NHDR" else c.data) for c in chunks])


def test_a_100_byte_siren_of_4gb_is_refused_before_allocating():
    data = _file(_header(), SirenArch(2, 3, 4096, 64, 30.0, 30.0), Chunk(b"TDAT", b"\x00"))
    assert len(data) < 120
    tracemalloc.start()
    with pytest.raises(LimitError, match=r"ARCH: this siren has 1,057,247,235 parameters, more than the decoder "
                                         r"limit 33,554,432"):
        nfcodec.decode(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 2**20


def test_a_nerv_head_of_7e10_weights_is_refused():
    slots = {f"factor{i}": 0 for i in range(6)} | {f"channels{i}": 0 for i in range(6)}
    arch = NervArch(pe_b=1.25, pe_l=80, mlp_hidden=4096, c1=4096, h0=64, w0=64, kernel=3, head_kernel=3, act=0, crop=0,
                    **{**slots, "factor0": 4, "channels0": 16})
    data = _file(_header(media=1, width=256, height=256, frames=2, arch=1), arch, Chunk(b"TDAT", b"\x00"))
    assert len(data) < 130
    with pytest.raises(LimitError, match=r"this nerv has 68,\d{3},\d{3},\d{3} parameters"):
        nfcodec.decode(data)


def test_work_per_frame_is_bounded():
    data = _replace((V2 / "siren-image-dense.nfc").read_bytes(), width=8192, height=8192)
    with pytest.raises(LimitError, match="frame of this siren costs"):
        open_stream(data, limits=DecodeLimits(max_frame_work=2**30, min_bpp=0))


def test_working_memory_is_bounded():
    data = _replace((V2 / "nerv-dense.nfc").read_bytes())
    with pytest.raises(LimitError, match=r"rendering one frame of this nerv needs \d+ MiB, more than the decoder limit 1 MiB"):
        open_stream(data, limits=DecodeLimits(max_peak_bytes=2**20))


def test_decompression_bombs_are_refused():
    big = _replace((V2 / "siren-image-dense.nfc").read_bytes(), width=8192, height=4096)      # 506 bytes
    with pytest.raises(LimitError, match=r"506 bytes claim 33,554,432 pixels \(0\.000121 bpp, below the limit "
                                         r"0\.000244\): refused as a decompression bomb"):
        nfcodec.decode(big)
    many = _replace((V2 / "nerv-dense.nfc").read_bytes(), frames=2**23)
    with pytest.raises(LimitError, match="decompression bomb"):
        list(nfcodec.decode_frames(many, frames="0:1"))
    (k, frame), = nfcodec.decode_frames(many, frames="0:1", limits=DecodeLimits.unlimited())     # trusted: fine
    assert frame.shape == (16, 20, 3)


def test_in_memory_video_decodes_are_bounded():
    data = _replace((V2 / "nerv-dense.nfc").read_bytes(), frames=300)
    with pytest.raises(LimitError, match=r"decoding 300 frames of 20x16 into memory needs 0 MiB \(limit 0 MiB\)"):
        nfcodec.decode(data, limits=DecodeLimits(max_output_bytes=1000))
    assert nfcodec.decode(data, frames="0:300:100").frames.shape == (3, 16, 20, 3)


# --------------------------------------------------------------------------- critical chunks must be consumed

UNUSED = {
    b"SEED": SeedRecord(0, 7).pack(),
    b"SCAL": b"\x00",
    b"MASK": b"\x00",
}


@pytest.mark.parametrize("ctype", sorted(UNUSED))
def test_unconsumed_critical_chunks_are_refused(ctype):
    chunks = list(read_container((V2 / "siren-image-dense.nfc").read_bytes()).chunks)
    chunks.insert(2, Chunk(ctype, UNUSED[ctype]))
    with pytest.raises(UnsupportedFeatureError, match=rf"critical chunk {ctype.decode()} at offset 72 is not used by "
                                                       r"a dense stream with layout single"):
        nfcodec.decode(write_container(chunks))


def test_prir_in_a_dense_stream_needs_its_prior():
    """Format 2.3: a dense single stream reads PRIR (weights coded against a prior); an unknown one is refused."""
    from nfcodec.priors import PriorNotFoundError

    chunks = list(read_container((V2 / "siren-image-dense.nfc").read_bytes()).chunks)
    chunks.insert(2, Chunk(b"PRIR", PriorRef(bytes(32)).pack()))
    with pytest.raises(PriorNotFoundError, match="this stream needs prior 0{64}; not found"):
        nfcodec.decode(write_container(chunks))


def test_xfrm_is_read_by_every_stream():
    """Format 2.3 (format.md 4d): an identity XFRM decodes as no chunk; a bad one is a field-range error."""
    from nfcodec.bitstream.errors import FieldRangeError

    chunks = list(read_container((V2 / "siren-image-dense.nfc").read_bytes()).chunks)
    plain = nfcodec.decode(write_container(chunks)).image
    for body, ok in ((TransformRecord(0, 0).pack(), True), (TransformRecord(0, 1).pack(), False)):
        data = write_container(chunks[:2] + [Chunk(b"XFRM", body)] + chunks[2:])
        if ok:
            assert nfcodec.decode(data).image.tobytes() == plain.tobytes()
        else:
            with pytest.raises(FieldRangeError, match=r"XFRM.param=1 outside \[0, 0\] for transform identity"):
                nfcodec.decode(data)


def test_seed_in_a_pruned_stream_is_refused():
    chunks = list(read_container((V2 / "siren-image-pruned.nfc").read_bytes()).chunks)
    chunks.insert(-1, Chunk(b"SEED", UNUSED[b"SEED"]))
    with pytest.raises(UnsupportedFeatureError, match="critical chunk SEED .* not used by a pruned stream"):
        nfcodec.decode(write_container(chunks))


def test_single_layout_takes_one_whole_segment_only():
    chunks = list(read_container((V2 / "siren-image-dense.nfc").read_bytes()).chunks)
    whole = Chunk(b"SEGM", SegmentHeader(0, 0, 0, 0).pack())
    ok = write_container(chunks[:2] + [whole] + chunks[2:])
    assert np.array_equal(nfcodec.decode(ok).image, nfcodec.decode(write_container(chunks)).image)
    with pytest.raises(nfcodec.FormatError, match="layout single: SEGM index 0 kind 1, must be segment 0 of kind whole"):
        nfcodec.decode(write_container(chunks[:2] + [Chunk(b"SEGM", SegmentHeader(0, 1, 0, 8).pack())] + chunks[2:]))
    with pytest.raises(nfcodec.FormatError, match="layout single: 2 SEGM chunks"):
        nfcodec.decode(write_container(chunks[:2] + [whole, whole] + chunks[2:]))


def test_unknown_ancillary_chunks_are_ignored():
    chunks = list(read_container((V2 / "nerv-dense.nfc").read_bytes()).chunks)
    data = write_container(chunks[:2] + [Chunk(b"zzZZ", b"anything")] + chunks[2:])
    assert np.array_equal(nfcodec.decode(data).frames, nfcodec.decode((V2 / "nerv-dense.nfc").read_bytes()).frames)


def test_format_1_frames_count_the_slower_float32_renderer():
    """Found by fuzzing: the 1.x float32 renderer is ~4x slower per activation than the exact one."""
    big = _replace((GOLDEN / "tiny-v1.0.nfc").read_bytes(), width=65535, height=1024)
    big = big[:8] + bytes((1, 0)) + big[10:]                  # _replace writes 2.0: keep the file 1.0
    limits = DecodeLimits(min_bpp=0)
    with pytest.raises(LimitError, match=r"float32 renderer of format 1\.x\), more than the decoder limit"):
        open_stream(big, limits=limits)
    as_v2 = big[:8] + bytes((2, 0)) + big[10:]               # the same network, exact arithmetic
    assert open_stream(as_v2, limits=limits).header.width == 65535
