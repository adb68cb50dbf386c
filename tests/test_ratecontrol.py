"""Rate control (--bpp / --psnr) and the RD step search, on the 32x24 test image."""
from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

import nfcodec
from nfcodec import encoder, rdsearch
from nfcodec.bitstream import read_container
from nfcodec.cli.main import cli
from nfcodec.errors import ConfigError
from nfcodec.media import load_image
from nfc_testdata import FAST, TINY_PNG

IMG = load_image(TINY_PNG)
PIXELS = IMG.shape[0] * IMG.shape[1]


def _meta(data: bytes) -> dict:
    (meta,) = [c.data for c in read_container(data).chunks if c.ctype == b"meTA"]
    return json.loads(meta)


QUICK = FAST.replace(steps=150)


@pytest.mark.parametrize("target,representation", [(6.0, "dense"), (12.0, "dense"), (12.0, "pruned")])
def test_bpp_lands_in_the_band(target, representation):
    r = nfcodec.encode(IMG, config=QUICK, bpp=target, representation=representation)
    budget = math.floor(target * PIXELS / 8)
    assert math.ceil(0.95 * target * PIXELS / 8) <= r.nbytes <= budget
    assert r.bpp == pytest.approx(8 * r.nbytes / PIXELS)
    rc = r.rate_control
    assert rc["mode"] == "bpp" and rc["target"] == target and rc["representation"] == representation
    assert rc["bpp"] == pytest.approx(r.bpp, abs=1e-6)
    assert _meta(r.data)["rate_control"]["width"] == rc["width"] == r.config.model.width
    if representation == "pruned":
        assert rc["sparsity"] == 0.2     # rate control's default when none is given
    # the closed-loop PSNR is what a decoder gets
    assert nfcodec.decode(r.data).image.tolist() == r.reconstruction.tolist()


def test_bpp_grows_the_model_with_the_target():
    small = nfcodec.encode(IMG, config=QUICK, bpp=6.0, metadata=False)
    large = nfcodec.encode(IMG, config=QUICK, bpp=16.0, metadata=False)
    assert large.rate_control["width"] > small.rate_control["width"]
    assert large.psnr > small.psnr + 1.0


def test_bpp_below_the_container_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"bpp=0.5 is 48 bytes for 768 pixels, below the container"):
        nfcodec.encode(IMG, config=FAST, bpp=0.5)


def test_psnr_target_is_reached_and_recorded():
    r = nfcodec.encode(IMG, config=FAST, psnr=30.0)
    assert r.psnr >= 30.0
    assert r.rate_control["mode"] == "psnr" and r.rate_control["target"] == 30.0
    assert _meta(r.data)["rate_control"]["target"] == 30.0
    assert r.rate_control["bpp"] == pytest.approx(r.bpp, abs=1e-6)
    # the target costs fewer bytes than the fixed-step file of the same network
    plain = nfcodec.encode(IMG, config=FAST.replace(rd_search=False, width=r.config.model.width))
    assert r.nbytes < plain.nbytes


def test_unreachable_psnr_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"psnr=99.0 dB not reached after \d fits"):
        nfcodec.encode(IMG, config=FAST.replace(steps=20), psnr=99.0)


def test_bpp_and_psnr_are_exclusive():
    with pytest.raises(ConfigError, match="not both"):
        nfcodec.encode(IMG, config=FAST, bpp=1.0, psnr=30.0)


def test_cli_bpp_prints_the_chosen_settings(tmp_path):
    out = tmp_path / "t.nfc"
    res = CliRunner().invoke(cli, ["encode", str(TINY_PNG), "-o", str(out), "--bpp", "8", "--steps", "150",
                                   "--depth", "2", "--batch-pixels", "0", "-q"])
    assert res.exit_code == 0, res.output
    assert res.output == ""
    assert out.stat().st_size <= 768
    res = CliRunner().invoke(cli, ["encode", str(TINY_PNG), "-o", str(tmp_path / "u.nfc"), "--bpp", "8",
                                   "--steps", "150", "--depth", "2", "--batch-pixels", "0"])
    assert res.exit_code == 0, res.output
    assert "rate control (bpp 8.0): arch=siren, representation=dense, width=" in res.output
    res = CliRunner().invoke(cli, ["encode", str(TINY_PNG), "-o", str(tmp_path / "v.nfc"), "--bpp", "0.1"])
    assert res.exit_code == 1
    assert res.output.startswith("nfc: error: bpp=0.1 is 9 bytes for 768 pixels")
    assert not (tmp_path / "v.nfc").exists()


# --------------------------------------------------------------------------- the RD search


@pytest.fixture(scope="module")
def fitted():
    cfg = FAST.replace(width=24)
    return encoder.fit_signal(IMG[None], 0, Fraction(0), cfg)


def test_rate_model_is_the_exact_file_size(fitted):
    meta = encoder.meta_dict(fitted.config, None, False)
    problem = encoder.quant_problem(fitted, meta)
    steps = list(fitted.fit.steps)
    for delta in (0, -8, -16, 4):
        trial = [s + delta if problem.size(i) >= 256 else s for i, s in enumerate(steps)]
        assert problem.total_bytes(trial) == len(encoder.container_bytes(fitted, trial, meta))


def test_full_evaluator_mse_is_the_decoded_mse(fitted):
    problem = encoder.quant_problem(fitted, None)
    full = rdsearch.Evaluator(fitted.arch, fitted.record, fitted.header, fitted.frames, full=True)
    decoded = nfcodec.decode(encoder.container_bytes(fitted, fitted.fit.steps, None)).image
    want = float(np.mean((decoded.astype(np.float64) - IMG) ** 2))
    assert full.mse(problem.network(fitted.fit.steps)) == pytest.approx(want, rel=1e-12)


def test_lagrangian_trades_rate_for_distortion_monotonically(fitted):
    problem = encoder.quant_problem(fitted, None)
    points = [rdsearch.search_lagrangian(problem, fitted.fit.steps, lam) for lam in (0.0005, 0.005, 0.5)]
    sizes = [problem.total_bytes(s) for s, _ in points]
    mses = [d for _, d in points]
    assert sizes[0] < sizes[1] <= sizes[2]
    assert mses[0] > mses[1] >= mses[2] - 1e-9


def test_budget_search_respects_the_budget(fitted):
    problem = encoder.quant_problem(fitted, None)
    start = problem.total_bytes(fitted.fit.steps)
    for budget in (int(0.6 * start), int(1.2 * start)):
        steps, _ = rdsearch.search_budget(problem, fitted.fit.steps, budget, min_bytes=int(0.95 * budget))
        assert int(0.95 * budget) <= problem.total_bytes(steps) <= budget


def test_rd_search_shrinks_the_default_file():
    on = nfcodec.encode(IMG, config=FAST.replace(width=24))
    off = nfcodec.encode(IMG, config=FAST.replace(width=24, rd_search=False))
    assert on.nbytes < 0.85 * off.nbytes
    assert on.psnr > off.psnr - 0.6


def test_scaled_config_scales_the_size_and_lowers_lr_when_wider():
    from nfcodec.config import PRESETS, VIDEO_PRESETS
    from nfcodec.ratecontrol import scaled_config

    wide, narrow = scaled_config(PRESETS["default"], 2.0), scaled_config(PRESETS["default"], 0.5)
    assert (wide.model.width, wide.fit.lr) == (128, pytest.approx(1e-3))
    assert (narrow.model.width, narrow.fit.lr) == (32, 2e-3)
    n = scaled_config(VIDEO_PRESETS["default"], 2.0).model
    assert (n.c1, n.c2, n.min_channels, n.mlp_hidden) == (32, 128, 32, 192)
