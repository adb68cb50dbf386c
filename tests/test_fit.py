"""The fitting loop: progress reporting, schedule and quantization-aware phase."""
from __future__ import annotations

import math

import pytest

import nfcodec
from nfcodec.config import FitConfig
from nfcodec.fit import _lr_at, resolve_device
from nfcodec.errors import ConfigError


def test_progress_reports_every_step_range_and_psnr(tiny_image, fast):
    seen = []
    r = nfcodec.encode(tiny_image, config=fast, progress=lambda s, t, p: seen.append((s, t, p)))
    steps = [s for s, _, _ in seen]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == fast.fit.steps
    assert all(t == fast.fit.steps for _, t, _ in seen)
    # the running PSNR ends close to the PSNR of the decoded file (QAT: same quantizer)
    assert seen[-1][2] == pytest.approx(r.psnr, abs=0.5)
    assert seen[-1][2] > seen[0][2] + 10


def test_learning_rate_schedule():
    cfg = FitConfig(steps=1000, lr=1e-3, warmup_steps=100, final_lr_ratio=0.1)
    assert _lr_at(0, cfg) == pytest.approx(1e-5)
    assert _lr_at(99, cfg) == pytest.approx(1e-3)
    assert _lr_at(550, cfg) == pytest.approx(0.55e-3)            # half-way down the cosine
    assert _lr_at(999, cfg) == pytest.approx(1e-4, rel=1e-3)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="is not a device"):
        resolve_device("banana")


def test_quantization_aware_fine_tune_is_appended_and_harmless(tiny_image, fast):
    seen = []
    plain = nfcodec.encode(tiny_image, config=fast.replace(bits=7))
    qat = nfcodec.encode(tiny_image, config=fast.replace(bits=7, qat_fraction=0.2),
                         progress=lambda s, t, p: seen.append(t))
    assert seen[-1] == fast.fit.steps + round(0.2 * fast.fit.steps)   # 60 extra steps after the float fit
    assert qat.data != plain.data
    assert qat.psnr > plain.psnr - 0.3                                 # measured: within +-0.1 dB
    assert math.isfinite(qat.psnr)
