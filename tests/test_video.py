"""Video end to end through the library API: closed loop, random access, metrics, header, errors."""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest

import nfcodec
from nfcodec.bitstream import Chunk, FormatError, StreamHeader, read_container, write_container
from nfcodec.errors import ConfigError, InputError

from nfc_testdata import CARPHONE, TINY_NERV, moving_clip  # noqa: E402

FPS = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return moving_clip()                     # 6 frames of 32x24


@pytest.fixture(scope="module")
def nerv(clip):
    return nfcodec.encode(clip, config=TINY_NERV, fps=FPS)


@pytest.fixture(scope="module")
def siren_video(clip):
    return nfcodec.encode(clip, arch="siren", fps=FPS, width=24, depth=2, steps=300, batch_pixels=1024,
                          lr=3e-3, warmup_steps=10)


def _psnr(mse: float) -> float:
    return 10 * math.log10(255.0**2 / mse)


def _rebuild(data: bytes, replace: dict[bytes, bytes]) -> bytes:
    return write_container([Chunk(c.ctype, replace.get(c.ctype, c.data)) for c in read_container(data).chunks])


@pytest.mark.parametrize("which", ["nerv", "siren_video"])
def test_closed_loop_and_frame_k_alone(request, clip, which):
    r = request.getfixturevalue(which)
    full = nfcodec.decode(r.data)
    assert full.frames.shape == clip.shape and full.indices == tuple(range(6))
    assert np.array_equal(full.frames, r.reconstruction)             # decoder == encoder's report
    for k in (0, 3, 5):
        (idx, alone), = nfcodec.decode_frames(r.data, frames=f"{k}:{k + 1}")
        assert idx == k and np.array_equal(alone, full.frames[k])     # frame k needs no other frame
    part = nfcodec.decode(r.data, frames="1:6:2")
    assert part.indices == (1, 3, 5) and np.array_equal(part.frames, full.frames[1::2])


@pytest.mark.parametrize("which", ["nerv", "siren_video"])
def test_both_psnr_definitions_and_bpp(request, clip, which):
    r = request.getfixturevalue(which)
    decoded = nfcodec.decode(r.data).frames.astype(np.float64)
    mses = [np.mean((decoded[k] - clip[k]) ** 2) for k in range(6)]
    assert r.frame_psnr == pytest.approx([_psnr(m) for m in mses], abs=1e-9)
    assert r.mean_frame_psnr == pytest.approx(np.mean([_psnr(m) for m in mses]), abs=1e-9)
    assert r.psnr == pytest.approx(_psnr(np.mean(mses)), abs=1e-9)     # PSNR of the mean MSE
    assert r.mean_frame_psnr >= r.psnr - 1e-9                          # Jensen: mean of logs >= log of mean
    assert r.bpp == pytest.approx(8 * len(r.data) / (6 * 24 * 32), abs=1e-12)


def test_quality_bands(nerv, siren_video):
    # tiny NeRV (~15k weights, 8 bits then the RD step search, 100 epochs): ~34 dB in ~9.2 kB
    # (15 kB with the 8-bit steps alone); SIREN 24x2 on (t, row, col): ~33 dB.
    assert 31.0 < nerv.mean_frame_psnr < 38.0
    assert 7_500 < nerv.nbytes < 11_000
    assert 30.0 < siren_video.mean_frame_psnr < 36.0
    assert siren_video.nbytes < 1500


def test_header_records_video_and_exact_fps(nerv, siren_video):
    info = nfcodec.probe(nerv.data)
    h = info.header
    assert (h.media, h.frames, h.width, h.height, h.arch) == (1, 6, 32, 24, 1)
    assert Fraction(h.fps_num, h.fps_den) == FPS and nerv.fps == FPS
    assert info.arch.NAME == "ARCH" and info.arch.blocks == ((2, 16), (2, 8), (2, 8))
    s = nfcodec.probe(siren_video.data)
    assert (s.header.arch, s.arch.in_features) == (0, 3)
    assert "6 frames @ 30000/1001 fps" in nerv.summary() and "mean of per-frame PSNR" in nerv.summary()


def test_encoder_is_deterministic(clip, nerv):
    assert nfcodec.encode(clip, config=TINY_NERV, fps=FPS).data == nerv.data


def test_training_keeps_frames_uint8(clip):
    from nfcodec.samplers import FrameSampler
    import torch

    s = FrameSampler(clip, 2)
    assert s.frames.dtype == torch.uint8 and s.frames.data_ptr() == torch.from_numpy(clip).data_ptr()
    t, y = s.next(torch.Generator().manual_seed(0))
    assert t.dtype == torch.float64 and y.shape == (2, 3, 24, 32) and y.dtype == torch.float32


def test_decode_frames_is_lazy(nerv, monkeypatch):
    from nfcodec.decoder import DecodedStream

    calls = []
    real = DecodedStream.render
    monkeypatch.setattr(DecodedStream, "render", lambda self, k: calls.append(k) or real(self, k))
    frames = nfcodec.decode_frames(nerv.data)
    assert calls == []
    next(frames)
    assert calls == [0]                       # one frame rendered per frame consumed


def test_errors(clip, nerv, tmp_path):
    with pytest.raises(ConfigError, match=r"--frames 4:9 outside the video's 6 frames"):
        list(nfcodec.decode_frames(nerv.data, frames="4:9"))
    with pytest.raises(ConfigError, match="outside the video's 6 frames"):
        nfcodec.encode(clip, config=TINY_NERV, frames="7:8")
    with pytest.raises(InputError, match="has no frames"):
        nfcodec.encode(clip[:0], config=TINY_NERV)
    with pytest.raises(ConfigError, match="videos only"):
        nfcodec.encode(clip[0], frames="0:1")
    with pytest.raises(ConfigError, match="'nerv' encodes videos"):
        nfcodec.encode(clip[0], arch="nerv")
    with pytest.raises(FormatError, match="holds a video"):
        from nfcodec.decoder import decode_bytes
        decode_bytes(nerv.data)


def test_nerv_stream_with_image_header_is_refused(nerv):
    header = StreamHeader.unpack(read_container(nerv.data).chunks[0].data)
    bad = _rebuild(nerv.data, {b"NHDR": dataclasses.replace(header, media=0, frames=1).pack()})
    with pytest.raises(FormatError, match=r"needs NHDR.media=1"):
        nfcodec.decode(bad)
    small = _rebuild(nerv.data, {b"NHDR": dataclasses.replace(header, width=40).pack()})
    with pytest.raises(FormatError, match=r"does not cover the 40x24 frame"):
        nfcodec.decode(small)


def test_decode_to_files(nerv, tmp_path):
    out = tmp_path / "o.mkv"
    r = nfcodec.decode(nerv.data, out, frames="2:5")
    assert r.written == 3 and r.frames is None
    from nfcodec.video_io import read_video

    back = read_video(out)
    assert np.array_equal(back.frames, nerv.reconstruction[2:5]) and back.fps == FPS
    (tmp_path / "png").mkdir()
    nfcodec.decode(nerv.data, tmp_path / "png" / "f%02d.png")
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [f"f{k:02d}.png" for k in range(6)]


@pytest.mark.skipif(not CARPHONE.exists(), reason="shared carphone clip not available")
def test_carphone_first_frames(tmp_path):
    r = nfcodec.encode(CARPHONE, tmp_path / "c.nfc", frames="0:6", resize="88x72", c1=8, c2=32, min_channels=12,
                       mlp_hidden=32, pe_l=16, epochs=80, batch_frames=1, lr=1e-2, bits=8)
    h = r.info.header
    assert (h.frames, h.width, h.height, Fraction(h.fps_num, h.fps_den)) == (6, 88, 72, FPS)
    assert (r.info.arch.h0, r.info.arch.w0) == (4, 5)                 # x18: 72x90, 2 columns cropped
    assert r.info.arch.blocks == ((3, 32), (3, 16), (2, 12))
    assert 27.0 < r.mean_frame_psnr < 35.0          # ~31 dB at ~13 bpp: tiny clips cost NeRV many bits
    assert r.mean_frame_psnr >= r.psnr
    decoded = nfcodec.decode(tmp_path / "c.nfc").frames
    assert np.array_equal(decoded, r.reconstruction)
