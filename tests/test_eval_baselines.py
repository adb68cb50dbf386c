"""Classical baselines (nfcodec.baselines): round trips, rate/quality ordering, errors; MS-SSIM."""
from __future__ import annotations

import io

import numpy as np
import pytest

from nfcodec.baselines import AV1, BASELINES, available_baselines, get_baseline
from nfcodec.errors import ConfigError, InputError
from nfcodec.media import Video, load_image
from nfcodec.metrics import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_levels, msssim_db, psnr

from nfc_testdata import TINY_PNG, moving_clip  # noqa: E402

# (codec, low-quality setting, its measured PSNR, high-quality setting): PSNRs measured with
# Pillow 13.0 / PyAV 18.1 (FFmpeg 8.1) on the 32x24 test image and a 4-frame 32x24 moving clip;
# the bands below leave 3 dB either way for other library builds.
CASES = [
    ("jpeg", 20, 22.9, 80), ("webp", 20, 24.3, 80), ("avif", 20, 22.7, 80),
    ("x264", 40, 26.6, 20), ("x265", 40, 25.6, 20), ("av1", 55, 29.2, 25),
]


@pytest.fixture(scope="module")
def image():
    return load_image(TINY_PNG)


@pytest.fixture(scope="module")
def clip():
    # 32x32, not 32x24: libx264 (FFmpeg 8.1 build) gives different bytes for the same 32x24 clip
    # depending on what it encoded before in the process (measured; 24x48, 32x32, 64x64 are stable)
    return moving_clip(4, 32, 32)


@pytest.mark.parametrize("name, low, low_psnr, high", CASES)
def test_round_trip_and_ordering(name, low, low_psnr, high, image, clip):
    if name not in available_baselines():
        pytest.skip(f"{name}: {BASELINES[name].unavailable()}")
    codec = get_baseline(name)
    media = image if codec.kind == "image" else clip
    small, big = codec.encode(media, low), codec.encode(media, str(high))
    out_small, out_big = codec.decode(small), codec.decode(big)
    assert out_small.dtype == np.uint8 and out_small.shape == media.shape
    assert 0 < len(small) < len(big)
    p_small, p_big = psnr(out_small, media), psnr(out_big, media)
    assert low_psnr - 3 < p_small < low_psnr + 3
    assert p_small < p_big < 60
    assert codec.encode(media, low) == small            # deterministic


def test_video_codecs_take_a_video_object_and_tag_bt601(clip):
    import av

    data = get_baseline("x264").encode(Video(clip, fps=30), 23)
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == 30 and stream.codec_context.name == "h264"
        frame = next(c.decode(stream))
        assert (frame.format.name, frame.colorspace, frame.color_range) == ("yuv420p", 5, 1)
    # a flat mid-grey clip survives the RGB -> yuv420p -> RGB chain almost exactly
    grey = np.full((2, 16, 16, 3), 128, np.uint8)
    assert psnr(get_baseline("x264").decode(get_baseline("x264").encode(grey, 18)), grey) > 45


def test_settings_and_defaults():
    for name, codec in BASELINES.items():
        assert codec.kind in ("image", "video") and len(codec.settings) >= 4
        assert [codec.parse_setting(s) for s in codec.settings] == sorted(
            codec.parse_setting(s) for s in codec.settings)
    assert BASELINES["jpeg"].meaning == "quality 0-100 (higher = better quality, more bytes)"
    assert BASELINES["x264"].meaning == "crf 0-51 (lower = better quality, more bytes)"
    with pytest.raises(ConfigError, match=r"^jpeg: setting 'high' is not an integer quality \(0-100\)$"):
        BASELINES["jpeg"].parse_setting("high")
    with pytest.raises(ConfigError, match=r"^x265: crf 52 outside \[0, 51\]$"):
        BASELINES["x265"].parse_setting(52)


def test_errors(image, clip, monkeypatch):
    with pytest.raises(ConfigError, match=r"^unknown codec 'jpeg2000' \(classical codecs: jpeg, webp, avif, x264, "
                                          r"x265, av1\)$"):
        get_baseline("jpeg2000")
    with pytest.raises(ConfigError, match=r"^x264 \(yuv420p\) needs an even frame width and height, got 31x32; "):
        get_baseline("x264").encode(clip[:, :, :31], 23)
    with pytest.raises(InputError, match=r"^an image codec needs an \(H, W, 3\) uint8 RGB array, "
                                         r"got \(4, 32, 32, 3\)$"):
        get_baseline("jpeg").encode(clip, 50)
    with pytest.raises(InputError, match=r"^a video codec needs a \(T, H, W, 3\) uint8 RGB clip"):
        get_baseline("x264").encode(image, 23)
    # builds without an encoder: clear one-line errors
    monkeypatch.setattr(AV1, "encoders", ("libnope-av1",))
    with pytest.raises(ConfigError, match=r"^this PyAV build has no AV1 encoder \(libnope-av1\)$"):
        get_baseline("av1")
    assert "av1" not in available_baselines()
    from PIL import features

    real = features.check
    monkeypatch.setattr(features, "check", lambda name: False if name == "avif" else real(name))
    with pytest.raises(ConfigError, match=r"^this Pillow build has no AVIF support \(codec 'avif' unavailable\)$"):
        get_baseline("avif")


def test_ms_ssim_levels_and_reference(image):
    import torch
    from pytorch_msssim import ms_ssim as reference

    sides = (10, 11, 20, 21, 40, 41, 80, 81, 160, 161)
    assert [ms_ssim_levels(s, 500) for s in sides] == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 168, 170, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    x, y = (torch.from_numpy(v).permute(0, 3, 1, 2).float() for v in (a, b))
    ref = reference(x, y, data_range=255, size_average=False).double().numpy()
    value, levels = ms_ssim(b, a)                     # a clip: mean over frames, 5 scales
    assert levels == 5 and value == pytest.approx(ref.mean(), abs=1e-6)
    assert ms_ssim(b[0], a[0])[0] == pytest.approx(ref[0], abs=1e-6)
    # our reduced-scale path with the 5 standard weights is the reference computation itself
    from nfcodec.metrics import _ms_ssim_torch

    assert _ms_ssim_torch(x, y, MS_SSIM_WEIGHTS).numpy() == pytest.approx(ref, abs=1e-6)
    # small images: fewer scales, identical images give 1, tiny ones NaN
    noisy = np.clip(image.astype(int) + 12, 0, 255).astype(np.uint8)
    v2, l2 = ms_ssim(noisy, image)
    assert l2 == 2 and 0.5 < v2 < 1
    assert ms_ssim(image, image) == (1.0, 2)
    v0, l0 = ms_ssim(image[:10], image[:10])
    assert l0 == 0 and np.isnan(v0)
    assert msssim_db(0.99) == pytest.approx(20.0) and msssim_db(1.0) == float("inf")
