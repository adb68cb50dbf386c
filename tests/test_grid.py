"""The latent-grid architecture (arch 2, format 2.4): exact upsampling, the record, encode/decode,
rate control and the refusals.  Every-arch tests (both backends, the reference decoder, golden
files) cover it too: tests/test_exact.py, tests/test_representations.py, tests/test_golden_v2.py."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nfcodec
from nfcodec.archs import ARCHS
from nfcodec.archs.grid import LATENT_STEP, upsample_exact
from nfcodec.bitstream import (Chunk, CodedTensor, FormatError, decode_tensors, encode_tensors, read_container, tensor_report,
                               write_container)
from nfcodec.bitstream.headers import GridArch
from nfcodec.config import ModelConfig
from nfcodec.errors import ConfigError
from nfcodec.media import load_image
from nfcodec.models.grid import GridField, causal_bits, kumaraswamy_noise, latent_sizes, quantize_latent, softround

from exact_reference import reference_frames
from nfc_testdata import TINY_GRID, TINY_PNG, medium_image, moving_clip


@pytest.mark.parametrize("level", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("size", [(24, 32), (17, 29), (5, 3)])
def test_exact_upsampling_is_torch_bilinear(level, size):
    """The integer kernel of format.md 6.8 is torch's bilinear (align_corners=False) to the bit."""
    H, W = size
    (h, w), = latent_sizes(H, W, level + 1)[level:]
    q = np.random.default_rng(level).integers(-40, 41, (h, w))
    f = 1 << level
    want = F.interpolate(torch.tensor(q, dtype=torch.float64)[None, None], size=(h * f, w * f), mode="bilinear",
                         align_corners=False)[0, 0, :H, :W].numpy()
    got = upsample_exact(q, level, H, W) / 4.0 ** (level + 1)
    assert np.array_equal(got, want)


def test_record_shapes_and_checks():
    spec = ARCHS.by_name("grid")
    assert spec.wire_id == 2
    r = GridArch(height=24, width=32, levels=4, hidden1=8, hidden2=0, act=0, upsample=0, head_kernel=1)
    assert spec.param_shapes(r) == [(24, 32), (12, 16), (6, 8), (3, 4), (8, 4), (8,), (3, 8), (3,)]
    assert GridArch.unpack(r.pack()) == r and len(r.pack()) == 12
    conv = dataclasses.replace(r, hidden2=6, head_kernel=3)
    assert spec.param_shapes(conv)[-4:] == [(6, 8), (6,), (3, 6, 3, 3), (3,)]
    with pytest.raises(FormatError, match="head_kernel=2 must be odd"):
        GridArch.unpack(dataclasses.replace(r, head_kernel=1).pack()[:-1] + bytes([2]))
    hdr = nfcodec.probe(nfcodec.encode(TINY_PNG, config=TINY_GRID).data).header
    with pytest.raises(FormatError, match="grid of 31x24 for a 32x24 frame"):
        spec.check(dataclasses.replace(r, width=31), hdr)
    with pytest.raises(FormatError, match="needs NHDR.media=0"):
        spec.check(r, dataclasses.replace(hdr, media=1, frames=2))


def test_levels_are_capped_by_the_image():
    from types import SimpleNamespace

    r = ARCHS.by_name("grid").make_record(ModelConfig(arch="grid", grid_levels=12), SimpleNamespace(height=24, width=32,
                                                                                                    media=0))
    assert r.levels == 6 and r.latent_sizes[-1] == (1, 1)


@pytest.mark.parametrize("head", [1, 3])
def test_tiny_encode_decodes_exactly_everywhere(head):
    r = nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_head_kernel=head))
    assert r.info.version == (2, 9) and r.info.header.arch == 2
    assert [c.ctype for c in read_container(r.data).chunks] == [b"NHDR", b"ARCH", b"TDAT", b"meTA", b"NEND"]
    assert 26.0 < r.psnr < 40.0 and 3.0 < r.bpp < 12.0, (r.psnr, r.bpp)
    for backend in ("numpy", "torch"):
        assert np.array_equal(nfcodec.decode(r.data, backend=backend).image, r.reconstruction)
    assert np.array_equal(reference_frames(r.data)[0], r.reconstruction)


def test_softround_and_kumaraswamy_noise():
    x = torch.tensor([-1.5, -1.2, -0.5, 0.0, 0.3, 0.5, 0.7, 1.0, 2.49])
    # integers and half-integers are fixed points; t -> 0 rounds (ties here sit at k + 1/2); t large is the identity
    assert torch.equal(softround(x, 0.3)[[0, 2, 3, 5, 7]], x[[0, 2, 3, 5, 7]])
    assert torch.allclose(softround(x, 1e-3)[[1, 4, 6, 8]], torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    assert torch.allclose(softround(x, 100.0), x, atol=1e-4)
    assert abs(softround(torch.tensor(0.3), 0.3).item() - 0.18705) < 1e-4      # pulled towards 0
    torch.manual_seed(0)
    uniform, peaked = kumaraswamy_noise(torch.zeros(100_000), 1.0), kumaraswamy_noise(torch.zeros(100_000), 2.0)
    for n in (uniform, peaked):
        assert -0.5 <= n.min().item() and n.max().item() <= 0.5
    assert abs(uniform.abs().mean().item() - 0.25) < 0.005                    # U(-1/2, 1/2)
    assert abs(peaked.abs().mean().item() - 0.176) < 0.005                    # concentrated near 0
    y = torch.tensor([0.2, 1.7, -2.4], requires_grad=True)
    q = quantize_latent(y, "noise", (0.1, 1.0))
    q.sum().backward()
    assert (q - y).abs().max().item() < 1.0 and y.grad is not None and torch.all(y.grad >= 0)


def test_softround_quantizer_encodes_and_is_recorded():
    r = nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_quantizer="softround"))
    assert 26.0 < r.psnr < 40.0 and 3.0 < r.bpp < 12.0, (r.psnr, r.bpp)
    assert np.array_equal(nfcodec.decode(r.data).image, r.reconstruction)
    meta = next(c for c in read_container(r.data).chunks if c.ctype == b"meTA").data
    assert b'"quantizer":"softround"' in meta
    with pytest.raises(ConfigError, match="grid_quantizer='ste' must be one of noise, softround"):
        TINY_GRID.replace(grid_quantizer="ste")


def test_latents_use_the_causal4_model_and_smaller_lambda_costs_more():
    big = nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_lambda=0.0005))
    small = nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_lambda=0.02))
    assert big.nbytes > small.nbytes and big.psnr > small.psnr
    tdat = next(c for c in read_container(big.data).chunks if c.ctype == b"TDAT").data
    # record 0 (the 24x32 level): index 0, step LATENT_STEP, n = 768 (uvarint 80 06), model id 6 (causal4)
    assert tdat[1:6] == bytes((0, LATENT_STEP, 0x80, 0x06, 6))
    assert [t.index for t in decode_tensors(tdat)] == list(range(8))


ARM_GRID = TINY_GRID.replace(grid_arm=8, grid_arm_steps=1500, grid_lambda=0.001, grid_levels=6)


@pytest.mark.parametrize("hidden", [8, 16])
def test_arm_codes_the_latents_in_fewer_bytes(hidden):
    """The file's latents in model 7 (the network inline in record 0, reused by record 1): the
    same tensors recoded without the network take at least 2% more bytes; exact decodes.  8 hidden
    units (GridConfig's default, the video presets) and 16 (the image presets)."""
    r = nfcodec.encode(medium_image(), config=ARM_GRID.replace(grid_arm=hidden))
    tdat = next(c for c in read_container(r.data).chunks if c.ctype == b"TDAT").data
    report = tensor_report(tdat)
    assert report[0]["model"] == "arm" and report[1]["model"] == "arm"
    assert report[0]["param_bytes"] > hidden * 24 > report[1]["param_bytes"]   # the network, then none
    sizes = latent_sizes(256, 256, 6)
    tensors = decode_tensors(tdat)
    plain = encode_tensors([CodedTensor(t.index, t.step, t.symbols, shape=sizes[i] if i < 6 else ())
                            for i, t in enumerate(tensors)])
    assert len(tdat) < 0.98 * len(plain), (len(tdat), len(plain))
    assert decode_tensors(plain) == tensors
    assert r.info.version == (2, 9) and r.fit.extra["arm_seconds"] > 0
    for backend in ("numpy", "torch"):
        assert np.array_equal(nfcodec.decode(r.data, backend=backend).image, r.reconstruction)
    assert np.array_equal(reference_frames(r.data)[0], r.reconstruction)


def test_image_presets_use_sixteen_hidden_units_and_video_presets_eight():
    from nfcodec.config import GRID_PRESETS, GRID_VIDEO_PRESETS
    assert {n: c.grid.grid_arm for n, c in GRID_PRESETS.items()} == {"fast": 16, "default": 16, "high": 16}
    assert {n: c.grid.grid_arm for n, c in GRID_VIDEO_PRESETS.items()} == {"fast": 8, "default": 8, "high": 8}


def test_arm_bpp_target_with_the_calibrated_controller(monkeypatch):
    """--bpp with the network in the calibration: the file lands within 5% of the target."""
    from nfcodec import grid_encoder as ge

    monkeypatch.setattr(ge, "ARM_CALIBRATE_STEPS", (300, 100))    # the test's time, not the preset's
    r = nfcodec.encode(medium_image(), config=ARM_GRID.replace(grid_lambda=0.0), bpp=1.0)
    assert 0.95 * 1.0 <= r.bpp <= 1.0, r.bpp
    assert 0.5 < r.fit.extra["coder_over_proxy"] < 1.3, r.fit.extra
    assert r.fit.extra["latent_lr"] == ge.latent_lr(ARM_GRID.grid, r.fit.extra["lambda"])
    assert r.fit.extra["synthesis_lr"] == ge.synthesis_lr(ARM_GRID.grid, r.fit.extra["lambda"])
    # the network was fitted to the file's latents; whether it pays here is borderline (about 400
    # of 7,900 bytes) and the CPU fit is not bit-reproducible, so the chosen model is not asserted
    # (test_arm_codes_the_latents_in_fewer_bytes pins a file that uses it)
    assert r.fit.extra["arm_seconds"] > 0
    tdat = next(c for c in read_container(r.data).chunks if c.ctype == b"TDAT").data
    assert tensor_report(tdat)[0]["model"] in ("arm", "causal4")


def test_arm_rate_term_is_the_network_over_twelve_neighbours():
    """grid_rate "arm": the training rate of a plane is the ideal Laplace bits under the float
    network of its twelve neighbours (0 outside), one network for every level, and its gradient
    reaches the network, the symbol and the neighbours."""
    from nfcodec.grid_arm import ArmTorchNet, arm_plane_bits, laplace2_bits

    model = GridField(24, 32, 4, (8,), arm_hidden=6)
    assert isinstance(model.arm, ArmTorchNet) and model.rate_parameters() == list(model.arm.parameters())
    assert len(model.rate_parameters()) == 6 and model.arm.l1.weight.shape == (6, 12)
    rng = np.random.default_rng(5)
    with torch.no_grad():
        for y in model.latents:
            y.copy_(torch.from_numpy(rng.normal(0, 3, tuple(y.shape)).astype(np.float32)))
    q = model.latents[1].detach().clone().requires_grad_(True)
    bits = arm_plane_bits(q, model.arm)
    # the plain reference: neighbour (dy, dx) of latent (i, j) is q[i + dy, j + dx], 0 outside
    from nfcodec.bitstream.arm import ARM_NEIGHBOURS

    h, w = q.shape
    rows = [[float(q.detach()[i + dy, j + dx]) if 0 <= i + dy < h and 0 <= j + dx < w else 0.0 for dy, dx in ARM_NEIGHBOURS]
            for i in range(h) for j in range(w)]
    with torch.no_grad():
        ref = laplace2_bits(model.arm(torch.tensor(rows)), q.detach().reshape(-1)).sum()
    assert bits.item() == pytest.approx(ref.item(), rel=1e-5) and bits.item() > 0
    bits.backward()
    assert model.arm.l1.weight.grad is not None and model.arm.l1.weight.grad.abs().sum() > 0
    # q[0, 0] is the first symbol and a neighbour of later ones: both paths reach it
    assert q.grad is not None and torch.count_nonzero(q.grad) == q.numel()
    with torch.no_grad():
        _, total = model("hard")
    assert total.item() == pytest.approx(sum(arm_plane_bits(torch.round(y), model.arm).item() for y in model.latents), rel=1e-5)
    with pytest.raises(ConfigError, match="grid_rate='arm' trains the context network: it needs grid_arm > 0"):
        TINY_GRID.replace(grid_rate="arm")
    with pytest.raises(ConfigError, match="grid_rate='linear' must be one of causal, arm"):
        TINY_GRID.replace(grid_rate="linear")


def test_arm_rate_training_codes_with_the_network_and_decodes_exactly(monkeypatch):
    """grid_rate "arm" (the context network trained with the latents): the file is the same kind
    of file (arm model, meTA says the rate term), decodes exactly on every backend, and --bpp
    lands within 5% through the calibration, which reads the trained network as it stands."""
    cfg = ARM_GRID.replace(grid_rate="arm")
    r = nfcodec.encode(medium_image(), config=cfg)
    chunks = {c.ctype: c.data for c in read_container(r.data).chunks}
    assert b'"rate":"arm"' in chunks[b"meTA"] and tensor_report(chunks[b"TDAT"])[0]["model"] == "arm"
    assert 20.0 < r.psnr < 40.0 and 0.3 < r.bpp < 6.0, (r.psnr, r.bpp)
    for backend in ("numpy", "torch"):
        assert np.array_equal(nfcodec.decode(r.data, backend=backend).image, r.reconstruction)
    from nfcodec import grid_encoder as ge

    monkeypatch.setattr(ge, "ARM_CALIBRATE_STEPS", (300, 100))    # the test's time, not the preset's
    t = nfcodec.encode(medium_image(), config=cfg.replace(grid_lambda=0.0, grid_arm_steps=300), bpp=1.0)
    assert 0.95 <= t.bpp <= 1.0 and 0.8 < t.fit.extra["coder_over_proxy"] < 1.3, (t.bpp, t.fit.extra)


def _tiny_doubled() -> np.ndarray:
    """The tiny test image at twice its size (64x48): a bit more room for the grid."""
    return np.kron(load_image(TINY_PNG), np.ones((2, 2, 1), np.uint8))


def test_bpp_target_is_met_within_five_percent():
    big = _tiny_doubled()
    for target in (3.0, 5.0):
        r = nfcodec.encode(big, config=TINY_GRID.replace(grid_lambda=0.0), bpp=target)
        assert 0.95 * target <= r.bpp <= target, (target, r.bpp)
        assert r.rate_control["target"] == target and r.rate_control["mode"] == "bpp"
        # the controller measured the file's coder against its proxy (fifth round)
        assert 0.7 < r.fit.extra["coder_over_proxy"] < 1.3, r.fit.extra


def test_calibration_runs_whatever_the_first_control_step():
    """The controller's first step is rounded up to a multiple of CONTROL_EVERY, so that the
    calibration (every CALIBRATE_EVERY steps from it) falls on control steps for any grid_iters:
    from int(0.2 x 320) = 64 it never ran, and the controller held the uncalibrated proxy at the
    target (kodim09 at --bpp 1.0 with 1920 steps: 18% under it, docs/grid.md)."""
    r = nfcodec.encode(_tiny_doubled(), config=TINY_GRID.replace(grid_lambda=0.0, grid_iters=320), bpp=3.0)
    assert 0.7 < r.fit.extra["coder_over_proxy"] < 1.3, r.fit.extra
    assert 0.95 * 3.0 <= r.bpp <= 3.0, r.bpp
    # the controller's estimate at the end of the noise phase, and the file it became (before delta)
    assert 0.8 * 3.0 < r.fit.extra["noise_end_bpp"] < 1.2 * 3.0, r.fit.extra
    assert 0.8 * 3.0 < r.fit.extra["delta1_bpp"] < 1.2 * 3.0, r.fit.extra


def test_calibration_rescales_the_proxy_to_the_coder():
    """_Calibration: k = coded latent bits / proxy bits of the rounded latents, and the file's
    estimated bpp = proxy x k / pixels + (8 x OVERHEAD_BYTES + BITS_PER_WEIGHT x weights) / pixels."""
    model = GridField(24, 32, 4, (8,))
    rng = np.random.default_rng(3)
    with torch.no_grad():
        for y in model.latents:
            y.copy_(torch.from_numpy(np.round(rng.laplace(0, 2.0, tuple(y.shape)))))
    from nfcodec import grid_encoder as ge

    cal = ge._Calibration(model, 24 * 32)
    assert cal.ratio == 1.0 and cal.updates == 0
    cal.update()
    planes = [y.detach().numpy().astype(np.int32) for y in model.latents]
    coded = 8 * len(encode_tensors([CodedTensor(l, LATENT_STEP, q.reshape(-1), shape=q.shape)
                                    for l, q in enumerate(planes)]))
    with torch.no_grad():
        proxy = model("hard")[1].item()
    assert cal.updates == 1 and cal.ratio == pytest.approx(coded / proxy, rel=1e-12)
    weights = 4 * 8 + 8 + 8 * 3 + 3
    extra = (8 * ge.OVERHEAD_BYTES + ge.BITS_PER_WEIGHT * weights) / (24 * 32)
    assert cal.bpp(1000.0) == pytest.approx(1000.0 * cal.ratio / (24 * 32) + extra, rel=1e-12)


def test_psnr_target_is_reached():
    r = nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_lambda=0.0), psnr=25.0)
    assert r.psnr >= 25.0 and r.rate_control["mode"] == "psnr"
    looser = nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_lambda=0.0), psnr=21.0)
    assert 21.0 <= looser.psnr and looser.nbytes < r.nbytes


def test_refusals_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="arch 'grid' encodes images"):
        nfcodec.encode(moving_clip(2, 24, 32), config=TINY_GRID, fps=25)
    with pytest.raises(ConfigError, match="below the --psnr target 60"):
        nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_iters=50), psnr=60)
    with pytest.raises(ConfigError, match="arch grid supports representation dense, not pruned"):
        nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(representation="pruned"))
    with pytest.raises(ConfigError, match="architecture grid cannot be tiled"):
        nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(layout="tiles"))
    with pytest.raises(ConfigError, match="grid levels grow spectrally"):
        nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(layout="width-chunks", growing="spatial"))
    with pytest.raises(ConfigError, match="cannot go below"):
        nfcodec.encode(TINY_PNG, config=TINY_GRID, bpp=0.01)


def _rewrite_tdat(data: bytes, fn) -> bytes:
    chunks = read_container(data).chunks
    out = []
    for c in chunks:
        if c.ctype == b"TDAT":
            ts = decode_tensors(c.data)
            out.append(Chunk(b"TDAT", encode_tensors(fn(ts))))
        else:
            out.append(Chunk(c.ctype, c.data))
    return write_container(out)


def test_latent_step_and_range_are_checked():
    r = nfcodec.encode(TINY_PNG, config=TINY_GRID)

    def restep(ts):
        return [CodedTensor(t.index, 8 if t.index == 0 else t.step, t.symbols) for t in ts]

    with pytest.raises(FormatError, match="grid latent level 0: step index 8, must be 0"):
        nfcodec.decode(_rewrite_tdat(r.data, restep))

    def huge(ts):
        return [CodedTensor(t.index, t.step, np.full(t.symbols.size, 40000) if t.index == 1 else t.symbols)
                for t in ts]

    with pytest.raises(FormatError, match="grid latent level 1: |symbol| 40000 exceeds 32768"):
        nfcodec.decode(_rewrite_tdat(r.data, huge))


def test_rate_estimate_follows_the_coder():
    """The training rate model estimates what the causal4 coder spends (within 10%)."""
    from nfcodec.bitstream.causal import _least_squares

    rng = np.random.default_rng(0)
    y = torch.tensor(np.round(np.cumsum(rng.laplace(0, 1.0, (48, 64)), axis=1) / 3))
    symbols = y.numpy().astype(np.int32)
    coefs = torch.tensor(_least_squares(symbols[None].astype(np.int64)), dtype=torch.float64) / 64
    # scales fitted per bin by a few Adam steps, as training does
    lb = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([lb], lr=0.05)
    for _ in range(300):
        bits = causal_bits(y, coefs, lb)
        opt.zero_grad()
        bits.backward()
        opt.step()
    coded = 8 * len(encode_tensors([CodedTensor(0, 0, symbols.reshape(-1), shape=(48, 64))], models=["causal4"]))
    assert abs(bits.item() - coded) / coded < 0.10, (bits.item(), coded)


def test_cli_encode_grid(tmp_path):
    from click.testing import CliRunner

    from nfcodec.cli.main import cli

    out = tmp_path / "t.nfc"
    res = CliRunner().invoke(cli, ["encode", str(TINY_PNG), "-o", str(out), "--arch", "grid", "--preset", "fast",
                                   "--grid-iters", "60", "--grid-ste-iters", "10", "--grid-crop", "0",
                                   "--lambda", "0.01", "--grid-levels", "3", "--grid-hidden", "6", "-q"])
    assert res.exit_code == 0, res.output
    info = CliRunner().invoke(cli, ["info", str(out)])
    assert info.exit_code == 0 and "levels" in info.output and "hidden1" in info.output
    res = CliRunner().invoke(cli, ["encode", str(TINY_PNG), "-o", str(tmp_path / "u.nfc"), "--arch", "grid",
                                   "--grid-hidden", "1,2,3", "-q"])
    assert res.exit_code != 0 and "grid_hidden=(1, 2, 3)" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "u.nfc").exists()


@pytest.mark.parametrize("ratio, gain", [(1.10, 0.5), (1.30, 0.5), (1.03, 0.1), (0.90, 0.1), (0.97, 0.1), (0.80, 0.5)])
def test_controller_gain_is_asymmetric(ratio, gain):
    """--bpp: lambda rises with the far gain from a 5% overshoot, falls with it only from a 1.2x
    undershoot (docs/grid.md "Windup at high rates")."""
    from nfcodec import grid_encoder as ge

    flat = torch.zeros(100, 3)

    def model(mode):
        assert mode == "hard"
        return flat, torch.tensor(100 * 2.0 * ratio)        # 2.0 * ratio bits per pixel

    model.bits = lambda mode: model(mode)[1]
    log_lam = math.log(1e-3)
    new = ge._control(model, flat, log_lam, 2.0, None)
    assert new == pytest.approx(log_lam + gain * math.log(ratio), abs=1e-6)
    # --psnr: a fit whose MSE is below the target's (too good: lambda must rise) is the overshoot
    mse_target = 4.0 * 10 ** (-30 / 10)

    def model_psnr(mode):
        return torch.full((100, 3), math.sqrt(mse_target / ratio)), torch.tensor(0.0)

    new = ge._control(model_psnr, flat, log_lam, None, 30.0)
    assert new == pytest.approx(log_lam + gain * math.log(ratio), abs=1e-5)


@pytest.mark.parametrize("target, first_call, start_lambda", [
    ({"bpp": 8.0}, 60, None),                  # --bpp: the controller acts from 20% of the noise phase
    ({"psnr": 25.0}, 150, 4.0 * 10 ** -2.5),   # --psnr: from half of it, lambda from the target's MSE
])
def test_controller_start_and_psnr_starting_lambda(monkeypatch, target, first_call, start_lambda):
    """docs/grid.md "Lambda, --bpp and --psnr": a --psnr fit starts at lambda = MSE_P and is not
    controlled in the first half of the noise phase (its quality climbs below the target at any
    lambda, and lowering lambda all that time wound it down)."""
    from nfcodec import grid_encoder as ge

    seen = []
    shipped = ge._control

    def control(model, flat, log_lam, tb, tp, calibration=None, frames=None, gain=None):
        seen.append(math.exp(log_lam))
        return shipped(model, flat, log_lam, tb, tp, calibration, frames, gain)

    monkeypatch.setattr(ge, "_control", control)
    monkeypatch.setattr(ge, "CONTROL_EVERY", 1)     # one call per noise step from the first controlled one
    fit_lambdas = []
    shipped_fit = ge.fit_grid

    def fit(*args, **kw):
        fit_lambdas.append(kw["lam"])
        return shipped_fit(*args, **kw)

    monkeypatch.setattr(ge, "fit_grid", fit)
    nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_lambda=0.0), **target)
    assert len(seen) == 300 - first_call                 # steps first_call .. 299 of the 300 noise steps
    if start_lambda is not None:
        assert fit_lambdas == [pytest.approx(start_lambda)] and seen[0] == pytest.approx(start_lambda)


def test_psnr_refits_with_the_winding_rule_when_the_target_is_missed(monkeypatch):
    """--psnr: when no latent scale reaches the target after the cautious fit, the encoder fits
    again with the earlier rule (lambda from GRID_DEFAULT_LAMBDA, controlled from 20%), once."""
    from nfcodec import grid_encoder as ge
    from nfcodec.config import GRID_DEFAULT_LAMBDA

    fits, shipped_fit, shipped_meet = [], ge.fit_grid, ge._meet_quality

    def fit(*args, **kw):
        fits.append((kw["lam"], kw["control_start"]))
        return shipped_fit(*args, **kw)

    def meet(*args):
        if len(fits) == 1:
            raise ge._QualityNotReached("the latent grid reached 1.00 dB at most (test)")
        return shipped_meet(*args)

    monkeypatch.setattr(ge, "fit_grid", fit)
    monkeypatch.setattr(ge, "_meet_quality", meet)
    r = nfcodec.encode(TINY_PNG, config=TINY_GRID.replace(grid_lambda=0.0), psnr=21.0)
    assert fits == [(pytest.approx(4.0 * 10 ** -2.1), None), (GRID_DEFAULT_LAMBDA, ge.CONTROL_START_BPP)]
    assert r.psnr >= 21.0 and r.rate_control["second_fit"] is True
    # an explicit --lambda is the expert's choice: no second fit, the one-line error stands
    fits.clear()
    with pytest.raises(ConfigError, match="reached 1.00 dB at most"):
        nfcodec.encode(TINY_PNG, config=TINY_GRID, psnr=21.0)
    assert len(fits) == 1


def _webp_point(image, quality):
    """(bpp, MSE on the [-1, 1] scale) of WebP at ``quality`` on ``image``, the direct way."""
    from nfcodec.baselines import BASELINES

    data = BASELINES["webp"].encode(image, quality)
    rec = BASELINES["webp"].decode(data)
    mse = np.mean((rec.astype(np.float64) - image.astype(np.float64)) ** 2) * 4.0 / 255.0 ** 2
    return 8.0 * len(data) / (image.shape[0] * image.shape[1]), mse


@pytest.mark.skipif(not __import__("PIL.features").features.check("webp"), reason="this Pillow has no WebP")
def test_webp_mse_at_interpolates_between_the_bracketing_qualities():
    """webp_mse_at: WebP's MSE at a quality's own rate is that quality's; between two qualities'
    rates, log MSE is linear in log bpp; outside the 0-100 range, the end's; falling with the rate."""
    from nfcodec.grid_encoder import webp_mse_at

    image = medium_image()
    (b30, m30), (b31, m31) = _webp_point(image, 30), _webp_point(image, 31)
    assert webp_mse_at(image, b30) == pytest.approx(m30, rel=1e-9)
    mid = math.sqrt(b30 * b31)
    assert webp_mse_at(image, mid) == pytest.approx(math.sqrt(m30 * m31), rel=1e-9)
    assert webp_mse_at(image, 1e-3) == pytest.approx(_webp_point(image, 0)[1], rel=1e-9)
    assert webp_mse_at(image, 64.0) == pytest.approx(_webp_point(image, 100)[1], rel=1e-9)
    mses = [webp_mse_at(image, b) for b in (0.25, 0.5, 1.0, 2.0)]
    assert all(a > b for a, b in zip(mses, mses[1:])), mses


def test_start_lambda_rules(monkeypatch):
    """start_lambda: grid_lambda wins; --psnr from the target's MSE; --bpp from the target alone
    ("bpp") or max(1.45 x (0.5 / bpp)^0.7, 2.9 x (0.5 / bpp)^1.7) x WebP's MSE ("webp"), which
    falls back to the target alone for a video or where WebP gives no estimate."""
    from nfcodec import grid_encoder as ge
    from nfcodec.config import GRID_DEFAULT_LAMBDA

    image = medium_image()
    by_bpp = TINY_GRID.replace(grid_lambda=0.0)
    by_webp = by_bpp.replace(grid_lambda_start="webp")
    monkeypatch.setattr(ge, "webp_mse_at", lambda im, bpp: 1e-3 * bpp ** -1.5 if im.ndim == 3 else 1 / 0)
    assert ge.start_lambda(TINY_GRID.replace(grid_lambda_start="webp"), 1.0, None, image) == 0.002
    assert ge.start_lambda(by_webp, None, 30.0, image) == pytest.approx(4e-3)
    assert ge.start_lambda(by_webp, None, None, image) == GRID_DEFAULT_LAMBDA
    # the steeper rule below 1 bpp, the 0.7 one above; they meet at 1 bpp (1.45 x 0.5^0.7 = 2.9 x 0.5^1.7)
    for bpp, per_mse in ((0.25, 2.9 * 2 ** 1.7), (0.5, 2.9), (1.0, 1.45 * 0.5 ** 0.7), (2.0, 1.45 * 0.25 ** 0.7)):
        assert ge.webp_lambda_per_mse(bpp) == pytest.approx(per_mse)
        assert ge.start_lambda(by_bpp, bpp, None, image) == pytest.approx(GRID_DEFAULT_LAMBDA * (0.5 / bpp) ** 1.3)
        assert ge.start_lambda(by_webp, bpp, None, image) == pytest.approx(per_mse * 1e-3 * bpp ** -1.5)
        assert ge.start_lambda(by_webp, bpp, None, np.stack([image] * 2)) == pytest.approx(
            GRID_DEFAULT_LAMBDA * (0.5 / bpp) ** 1.3)
    monkeypatch.setattr(ge, "webp_mse_at", lambda im, bpp: None)
    assert ge.start_lambda(by_webp, 1.0, None, image) == pytest.approx(GRID_DEFAULT_LAMBDA * 0.5 ** 1.3)


def test_webp_mse_at_without_webp_or_for_an_image_webp_cannot_code(monkeypatch):
    """No estimate (None, so the target-alone rule) where this Pillow has no WebP, and for a side
    over WebP's 16383 pixels (checked before any encode)."""
    from nfcodec.baselines import WebP
    from nfcodec.grid_encoder import webp_mse_at

    assert webp_mse_at(np.zeros((16384, 1, 3), np.uint8), 1.0) is None
    monkeypatch.setattr(WebP, "unavailable", lambda self: "no WebP (test)")
    assert webp_mse_at(medium_image(), 1.0) is None


def test_the_image_presets_start_lambda_from_webp():
    """docs/grid.md "Where lambda starts": the fast and default image presets start a --bpp fit from
    WebP's MSE; high (unmeasured), the video presets and GridConfig's default from the target alone."""
    from nfcodec.config import GRID_PRESETS, GRID_VIDEO_PRESETS, GridConfig

    assert {n: p.grid.grid_lambda_start for n, p in GRID_PRESETS.items()} == \
        {"fast": "webp", "default": "webp", "high": "bpp"}
    assert {p.grid.grid_lambda_start for p in GRID_VIDEO_PRESETS.values()} == {"bpp"}
    assert GridConfig().grid_lambda_start == "bpp"


def test_a_webp_started_encode_records_its_starting_lambda():
    """An encode with grid_lambda_start "webp" fits from start_lambda of the image, and says so
    (result.fit.extra["lambda_start"]); the controller moves it from there."""
    from nfcodec import grid_encoder as ge

    config = TINY_GRID.replace(grid_lambda=0.0, grid_lambda_start="webp")
    r = nfcodec.encode(TINY_PNG, config=config, bpp=8.0)
    image = load_image(TINY_PNG)
    assert r.fit.extra["lambda_start"] == pytest.approx(ge.start_lambda(config, 8.0, None, image), rel=1e-12)
    assert r.fit.extra["lambda"] != r.fit.extra["lambda_start"]
    with pytest.raises(ConfigError, match="grid_lambda_start='jpeg' must be one of bpp, webp"):
        TINY_GRID.replace(grid_lambda_start="jpeg")


@pytest.mark.parametrize("scale, high, synth_high, lam, latent, synthesis", [
    (1.0, 0.0, 0.0, 0.01, 0.04, 0.04), (0.25, 0.0, 0.0, 1e-5, 0.04, 0.01),
    (0.5, 0.08, 0.0, 0.05, 0.04, 0.02), (0.5, 0.08, 0.0, 1e-3, 0.04, 0.02),
    (0.5, 0.08, 0.0, 5e-4, 0.04 * 2**0.5, 0.02), (0.5, 0.08, 0.0, 2.5e-4, 0.08, 0.02),
    (0.5, 0.08, 0.0, 1e-5, 0.08, 0.02),
    # the synthesis's rate on the same rule: grid_lr x scale at high lambda, x synth_high at low
    (1.0, 0.08, 0.5, 0.01, 0.04, 0.04), (1.0, 0.08, 0.5, 5e-4, 0.04 * 2**0.5, 0.04 * 2**-0.5),
    (1.0, 0.08, 0.5, 2.5e-4, 0.08, 0.02), (1.0, 0.0, 0.25, 1e-5, 0.04, 0.01)])
def test_synthesis_and_latent_learning_rates(scale, high, synth_high, lam, latent, synthesis):
    """Adam's first step moves every synthesis weight by synthesis_lr (the first step of Adam is the
    gradient's sign times the rate): grid_lr x grid_synthesis_lr_scale, or with
    grid_synthesis_lr_scale_high that scale from LR_LAMBDA_HI (1e-3) up and grid_lr x
    grid_synthesis_lr_scale_high from LR_LAMBDA_LO (2.5e-4) down, geometric in lambda between; the
    latents move by grid_lr, or with grid_lr_high by latent_lr on the same rule."""
    from types import SimpleNamespace

    from nfcodec.config import GridConfig, get_preset
    from nfcodec.grid_encoder import LR_LAMBDA_HI, LR_LAMBDA_LO, fit_grid, latent_lr, synthesis_lr

    assert (LR_LAMBDA_HI, LR_LAMBDA_LO) == (1e-3, 2.5e-4)
    image = medium_image()[:24, :32]
    record = SimpleNamespace(levels=3, hidden=(8,), head_kernel=1)
    base = get_preset("fast", arch="grid")
    grid = GridConfig(grid_iters=0, grid_ste_iters=0, grid_lr=0.04, grid_synthesis_lr_scale=scale, grid_lr_high=high,
                      grid_synthesis_lr_scale_high=synth_high)
    assert latent_lr(grid, lam) == pytest.approx(latent, rel=1e-9)
    assert synthesis_lr(grid, lam) == pytest.approx(synthesis, rel=1e-9)
    moved = []
    for iters in (0, 1):
        model, fit = fit_grid(image, dataclasses.replace(base, grid=dataclasses.replace(grid, grid_iters=iters)),
                              record, lam=lam)
        moved.append([p.detach().clone() for p in (*model.latents, *model.synthesis_parameters())])
    assert (fit["latent_lr"], fit["synthesis_lr"]) == pytest.approx((latent, synthesis), rel=1e-9)
    steps = [(b - a).abs().max().item() for a, b in zip(*moved)]
    assert steps[:3] == pytest.approx([latent] * 3, rel=1e-4)
    assert steps[3:] == pytest.approx([synthesis] * (len(steps) - 3), rel=1e-4)
    with pytest.raises(ConfigError, match="grid_synthesis_lr_scale=0 outside"):
        GridConfig(grid_synthesis_lr_scale=0)
    with pytest.raises(ConfigError, match="grid_lr_high=2 outside"):
        GridConfig(grid_lr_high=2)
    with pytest.raises(ConfigError, match="grid_synthesis_lr_scale_high=200 outside"):
        GridConfig(grid_synthesis_lr_scale_high=200)


def test_latent_learning_rate_follows_the_controller():
    """With a target the latents' rate follows the controller's lambda, not the starting one: a fit
    started at lambda 1e-2 (grid_lr) that the controller drives down ends at latent_lr(final lambda)."""
    from types import SimpleNamespace

    from nfcodec.config import GridConfig, get_preset
    from nfcodec.grid_encoder import fit_grid, latent_lr, synthesis_lr

    image = medium_image()[:32, :32]
    record = SimpleNamespace(levels=3, hidden=(8,), head_kernel=1)
    grid = GridConfig(grid_iters=100, grid_ste_iters=0, grid_lr=0.04, grid_lr_high=0.08, grid_synthesis_lr_scale_high=0.5,
                      grid_arm=0)
    _, fit = fit_grid(image, dataclasses.replace(get_preset("fast", arch="grid"), grid=grid), record, lam=1e-2,
                      target_bpp=8.0)
    assert fit["lambda"] < 1e-3
    assert fit["latent_lr"] == pytest.approx(latent_lr(grid, fit["lambda"]), rel=1e-9)
    assert fit["latent_lr"] > 0.04
    assert fit["synthesis_lr"] == pytest.approx(synthesis_lr(grid, fit["lambda"]), rel=1e-9)
    assert fit["synthesis_lr"] < 0.04
