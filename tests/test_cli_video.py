"""The nfc command line with videos: encode/decode/info, reported numbers, one-line errors."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from nfcodec.cli.main import cli
from nfcodec.video_io import read_video, write_video

from nfc_testdata import CARPHONE, TINY_PNG, moving_clip  # noqa: E402

NERV_ARGS = ["--c1", "8", "--c2", "16", "--min-channels", "8", "--mlp-hidden", "32", "--epochs", "60",
             "--batch-frames", "2", "--bits", "8", "--lr", "5e-3"]


@pytest.fixture()
def run():
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture()
def clip_mkv(tmp_path):
    path = tmp_path / "clip.mkv"
    write_video(path, enumerate(moving_clip()), width=32, height=24, fps=30)
    return path


def _one_error_line(result, pattern: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert re.match(rf"nfc: error: .*{pattern}", lines[0]), lines[0]


def test_encode_decode_info_round_trip(tmp_path, run, clip_mkv):
    out, dec = tmp_path / "c.nfc", tmp_path / "d.mkv"
    r = run("encode", str(clip_mkv), "-o", str(out), *NERV_ARGS)
    assert r.exit_code == 0, r.output
    m = re.search(r"32x24, 6 frames @ 30 fps: (\d+) bytes, ([\d.]+) bpp, PSNR ([\d.]+) dB \(mean of per-frame PSNR\), "
                  r"([\d.]+) dB \(PSNR of the mean MSE\)", r.stdout)
    assert m, r.stdout
    assert int(m.group(1)) == out.stat().st_size
    assert float(m.group(2)) == pytest.approx(8 * out.stat().st_size / (6 * 32 * 24), abs=1e-4)
    assert run("decode", str(out), "-o", str(dec), "-q").exit_code == 0
    src, got = read_video(clip_mkv).frames.astype(float), read_video(dec).frames.astype(float)
    mses = [np.mean((got[k] - src[k]) ** 2) for k in range(6)]
    assert float(m.group(3)) == pytest.approx(np.mean([10 * math.log10(255**2 / e) for e in mses]), abs=0.006)
    assert float(m.group(4)) == pytest.approx(10 * math.log10(255**2 / np.mean(mses)), abs=0.006)
    info = run("info", str(out)).stdout
    assert "video          6 frames of 32x24 at 30/1 fps (30.000, 0.20 s)" in info
    assert re.search(r"TDAT  offset +\d+ +\d+ bytes", info) and "arch           1 (nerv)" in info


def test_json_and_partial_png_decode(tmp_path, run, clip_mkv):
    out = tmp_path / "c.nfc"
    report = json.loads(run("encode", str(clip_mkv), "-o", str(out), *NERV_ARGS, "--frames", "0:6:2", "--json").stdout)
    assert report["frames"] == 3 and report["fps"] == "30/1" and report["config"]["model"]["arch"] == "nerv"
    assert report["mean_frame_psnr"] >= report["psnr"]
    (tmp_path / "png").mkdir()
    r = run("decode", str(out), "-o", str(tmp_path / "png" / "%03d.png"), "--frames", "1:3")
    assert r.exit_code == 0 and "2 frames of 32x24" in r.stdout
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["001.png", "002.png"]


def test_siren_video_and_lossy_delivery(tmp_path, run, clip_mkv):
    out = tmp_path / "s.nfc"
    r = run("encode", str(clip_mkv), "-o", str(out), "--arch", "siren", "--width", "16", "--depth", "2",
            "--steps", "100", "--batch-pixels", "1024", "-q")
    assert r.exit_code == 0 and r.output == ""
    assert run("decode", str(out), "-o", str(tmp_path / "s.mp4"), "--crf", "20", "-q").exit_code == 0
    assert read_video(tmp_path / "s.mp4").frames.shape == (6, 24, 32, 3)


def test_video_errors_are_one_line(tmp_path, run, clip_mkv):
    o = str(tmp_path / "o.nfc")
    _one_error_line(run("encode", str(clip_mkv), "-o", o, "--frames", "100:200"),
                    r"--frames 100:200 outside the video's 6 frames")
    _one_error_line(run("encode", str(clip_mkv), "-o", o, "--frames", "x"), r"--frames 'x': expected A:B")
    _one_error_line(run("encode", str(clip_mkv), "-o", o, "--resize", "big"), r"--resize 'big'")
    _one_error_line(run("encode", str(TINY_PNG), "-o", o, "--frames", "0:1"), "videos only")
    _one_error_line(run("encode", str(clip_mkv), "-o", o, "--resize", "1280x720", "--factors", "2", *NERV_ARGS),
                    r"1280x720 needs a NeRV base map of 640x360 with upscale factors 2 \(product 2\).*too large")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 64)
    _one_error_line(run("encode", str(junk), "-o", o), "not a readable video")
    (tmp_path / "none").mkdir()
    _one_error_line(run("encode", str(tmp_path / "none"), "-o", o), "has no frames")
    assert not (tmp_path / "o.nfc").exists()


def test_decode_errors(tmp_path, run, clip_mkv):
    out = tmp_path / "c.nfc"
    run("encode", str(clip_mkv), "-o", str(out), *NERV_ARGS, "--epochs", "5", "-q")
    _one_error_line(run("decode", str(out), "-o", str(tmp_path / "d.mkv"), "--frames", "3:9"),
                    r"--frames 3:9 outside the video's 6 frames")
    _one_error_line(run("decode", str(out), "-o", str(tmp_path / "d.y4m"), "--crf", "20"), r"--crf applies to")
    _one_error_line(run("decode", str(out), "-o", str(tmp_path / "d.avi")), r"cannot write video format")
    (tmp_path / "d.mkv").write_bytes(b"keep")
    _one_error_line(run("decode", str(out), "-o", str(tmp_path / "d.mkv")), "output file exists")
    assert (tmp_path / "d.mkv").read_bytes() == b"keep"


@pytest.mark.skipif(not CARPHONE.exists(), reason="shared carphone clip not available")
def test_unseen_clip_with_default_settings(tmp_path, run):
    """A clip the tests never tuned on: nfc encode (default preset) then nfc decode agree."""
    src, out, dec = tmp_path / "src.mkv", tmp_path / "c.nfc", tmp_path / "d.mkv"
    frames = read_video(CARPHONE, frames="60:64", resize=(44, 36)).frames
    write_video(src, enumerate(frames), width=44, height=36, fps=30)
    r = run("encode", str(src), "-o", str(out), "--epochs", "40", "--json")    # default preset, fewer epochs
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert run("decode", str(out), "-o", str(dec), "-q").exit_code == 0
    got = read_video(dec).frames.astype(float)
    mse = np.mean((got - frames) ** 2)
    assert report["psnr"] == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    # a default encode sizes the network for the clip (format x frames x pixels, docs/video.md):
    # 4 frames of 44x36 warrant ~0.43 bpp, a tiny network
    rc = report["rate_control"]
    assert rc["mode"] == "clip" and rc["target"] == pytest.approx(0.2 * (4 * 44 * 36 / 1e6) ** -0.15, abs=1e-4)
    # (the smallest network of the size ladder still takes ~1.5 bpp of so few pixels)
    assert rc["c1"] < 16 and report["bpp"] < 2.0 and report["psnr"] > 15


def test_unknown_extension_falls_back_to_pyav(tmp_path, run, clip_mkv):
    odd = tmp_path / "clip.bin"
    odd.write_bytes(clip_mkv.read_bytes())
    r = run("encode", str(odd), "-o", str(tmp_path / "o.nfc"), *NERV_ARGS, "--epochs", "2", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["frames"] == 6
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"neither an image nor a video")
    _one_error_line(run("encode", str(junk), "-o", str(tmp_path / "p.nfc")), "not a readable image")
