"""Video input and output through PyAV: colour, frame rate, ranges, lossless writers, errors."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from nfcodec.errors import ConfigError, InputError, NFCodecError, OutputExistsError
from nfcodec.media import Video, parse_frame_range, parse_size, resolve_frame_range
from nfcodec.video_io import read_video, write_video

from nfc_testdata import CARPHONE, moving_clip  # noqa: E402

av = pytest.importorskip("av")
needs_carphone = pytest.mark.skipif(not CARPHONE.exists(), reason="shared carphone clip not available")


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return moving_clip(5, 18, 22)


@needs_carphone
def test_carphone_first_frames_rate_and_resize():
    v = read_video(CARPHONE, frames="0:4")
    assert v.frames.shape == (4, 144, 176, 3) and v.frames.dtype == np.uint8
    assert v.fps == Fraction(30000, 1001)
    stepped = read_video(CARPHONE, frames="0:6:2", resize=(88, 72))
    assert stepped.frames.shape == (3, 72, 88, 3)
    small = read_video(CARPHONE, frames="2:3", resize=(88, 72))
    assert np.array_equal(small.frames[0], stepped.frames[1])       # frame 2 either way
    assert abs(float(small.frames.mean()) - float(v.frames[2].mean())) < 2   # area scaling keeps the mean


@needs_carphone
def test_frame_range_outside_the_video():
    with pytest.raises(ConfigError, match=r"--frames 100:200 outside the video's 120 frames"):
        read_video(CARPHONE, frames="100:200")
    with pytest.raises(ConfigError, match=r"--frames 130: outside the video's 120 frames"):
        read_video(CARPHONE, frames="130:")


@pytest.mark.parametrize("name", ["out.mkv", "out.mp4", "frames/%03d.png"])
def test_lossless_writers_round_trip_exactly(tmp_path, clip, name):
    (tmp_path / "frames").mkdir()
    out = tmp_path / name
    n = write_video(out, enumerate(clip), width=22, height=18, fps=Fraction(30000, 1001))
    assert n == len(clip)
    back = read_video(tmp_path / "frames" if "%" in name else out)
    assert np.array_equal(back.frames, clip)
    if "%" not in name:
        assert back.fps == Fraction(30000, 1001)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp files left


def test_y4m_is_yuv_and_close_but_not_exact(tmp_path, clip):
    write_video(tmp_path / "o.y4m", enumerate(clip), width=22, height=18, fps=Fraction(25))
    back = read_video(tmp_path / "o.y4m").frames.astype(int)
    assert back.shape == clip.shape and np.abs(back - clip).max() <= 3


def test_crf_delivery_encode_is_lossy_and_small(tmp_path):
    clip = moving_clip(6, 24, 32)
    write_video(tmp_path / "d.mp4", enumerate(clip), width=32, height=24, crf=23)
    back = read_video(tmp_path / "d.mp4").frames.astype(float)
    mse = np.mean((back - clip) ** 2)
    assert 0 < mse and 10 * np.log10(255**2 / mse) > 30
    with pytest.raises(ConfigError, match=r"needs an even width and height, got 22x18|even width"):
        write_video(tmp_path / "odd.mp4", enumerate(moving_clip(2, 17, 23)), width=23, height=17, crf=23)
    with pytest.raises(ConfigError, match="not .y4m"):
        write_video(tmp_path / "x.y4m", enumerate(clip), width=32, height=24, crf=23)
    with pytest.raises(NFCodecError, match="cannot write video format '.avi'"):
        write_video(tmp_path / "x.avi", enumerate(clip), width=32, height=24)


def test_png_pattern_refuses_existing_frames(tmp_path, clip):
    (tmp_path / "001.png").write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="001.png"):
        write_video(tmp_path / "%03d.png", enumerate(clip), width=22, height=18)
    assert (tmp_path / "001.png").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["001.png"]           # nothing else moved in
    write_video(tmp_path / "%03d.png", enumerate(clip), width=22, height=18, overwrite=True)
    assert len(list(tmp_path.glob("*.png"))) == len(clip)


def _yuv_clip(path, colorspace: int, color_range: int) -> None:
    with av.open(str(path), "w") as out:
        st = out.add_stream("ffv1", rate=25)
        st.width, st.height, st.pix_fmt = 16, 16, "yuv444p"
        st.codec_context.colorspace, st.codec_context.color_range = colorspace, color_range   # stream tags
        for i in range(2):
            f = av.VideoFrame(16, 16, "yuv444p")
            for plane, value in zip(f.planes, (120, 100, 200)):
                plane.update(np.full((16, 16), value, np.uint8).tobytes())
            f.colorspace, f.color_range, f.pts = colorspace, color_range, i
            out.mux(st.encode(f))
        out.mux(st.encode())


@pytest.mark.parametrize("colorspace, color_range, rgb", [
    (1, 2, (233, 92, 68)),    # tagged BT.709 full range
    (1, 1, (250, 89, 62)),    # tagged BT.709 limited range
    (5, 1, (236, 74, 65)),    # tagged BT.601 limited range
    (2, 0, (236, 74, 65)),    # untagged: assumed BT.601 limited range
])
def test_colour_matrix_and_range_follow_the_stream(tmp_path, colorspace, color_range, rgb):
    # expected values: the textbook YCbCr -> RGB equations for Y, Cb, Cr = 120, 100, 200
    _yuv_clip(tmp_path / "c.mkv", colorspace, color_range)
    assert tuple(read_video(tmp_path / "c.mkv").frames[0, 0, 0]) == rgb


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="input file not found"):
        read_video(tmp_path / "none.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError, match="junk.mp4: not a readable video"):
        read_video(tmp_path / "junk.mp4")
    with av.open(str(tmp_path / "audio.mkv"), "w") as out:
        st = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(st.encode(frame))
        out.mux(st.encode())
    with pytest.raises(InputError, match="audio.mkv has no video stream"):
        read_video(tmp_path / "audio.mkv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no frames"):
        read_video(tmp_path / "empty")
    with pytest.raises(InputError, match="has no frames"):
        Video(np.zeros((0, 4, 4, 3), np.uint8))


def test_range_and_size_parsing():
    assert parse_frame_range("0:60") == slice(0, 60) and parse_frame_range("5:") == slice(5, None)
    assert resolve_frame_range(parse_frame_range("0:10:3"), 12) == range(0, 10, 3)
    assert resolve_frame_range(None, 4) == range(4)
    for bad in ("5", "a:b", "1:2:0", "-1:3"):
        with pytest.raises(ConfigError, match="--frames"):
            parse_frame_range(bad)
    with pytest.raises(ConfigError, match="--frames 3:3 outside"):
        resolve_frame_range(parse_frame_range("3:3"), 10)
    assert parse_size("320x180") == (320, 180)
    with pytest.raises(ConfigError, match="--resize"):
        parse_size("320")
