"""NeRV (video) priors, issue 12: meta-training (nfcodec.meta.nerv, ``nfc prior train --arch nerv``),
encoding a clip from a prior (nfcodec.prior_encoder: layout single, PRIR, residuals) and decoding it.

Everything runs on tiny NeRVs (the fast video preset sized for 3-4 frames of 32x24: ~900 weights)
and synthetic clips; the whole file takes seconds on a 2-core CPU.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import nfcodec
from nfc_testdata import moving_clip
from nfcodec.bitstream import read_container
from nfcodec.errors import ConfigError, InputError
from nfcodec.meta import learn
from nfcodec.meta import nerv as N
from nfcodec.meta.train import MetaConfig, load_checkpoint, meta_train, train_prior
from nfcodec.models.nerv import Nerv
from nfcodec.priors import PriorNotFoundError, load_prior, pack_prior, prior_from_float

CLIP = moving_clip(4, 24, 32)             # (4, 24, 32, 3): the clip the priors below are for


def _tiny(**kw) -> MetaConfig:
    base = dict(arch="nerv", size="4x32x24", preset="fast", inner_steps=2, inner_lr=0.3, meta_lr=3e-3,
                meta_batch=2, steps=12, device="cpu", seed=0, context_keep=1.0, bootstrap_steps=0, first_order=True)
    base.update(kw)
    return MetaConfig(**base)


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    from nfcodec.video_io import write_video

    d = tmp_path_factory.mktemp("videos")
    for i, clip in enumerate([moving_clip(12, 48, 64), moving_clip(12, 48, 64)[:, ::-1, ::-1]]):
        write_video(d / f"clip{i}.mkv", enumerate(np.ascontiguousarray(clip)), width=64, height=48, fps=25)
    return d


@pytest.fixture(scope="module")
def source(video_dir):
    return N.task_source([video_dir], _tiny())


@pytest.fixture(scope="module")
def prior_path(video_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("prior") / "tiny-video.nfp"
    train_prior([video_dir], path, _tiny(steps=6), command="test")
    return path


# ---------------------------------------------------------------------------------------------- building blocks


def test_batched_forward_is_the_nerv_module():
    rec = N.nerv_record(4, 24, 32, "fast")
    tensors = N.nerv_init(rec, torch.Generator().manual_seed(3))
    model = Nerv(rec).init_weights_(torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(tensors, model.parameters()))   # the codec's own init
    params = [torch.stack([t, 1.1 * t]) for t in tensors]
    out = N.forward(params, rec, N.encoding(rec, 4), 24, 32)
    assert out.shape == (2, 4, 3, 24, 32)
    t = torch.arange(4, dtype=torch.float64) / 4           # the encoder's FrameSampler inputs
    for b in range(2):
        with torch.no_grad():
            for p, q in zip(model.parameters(), params):
                p.copy_(q[b])
            torch.testing.assert_close(out[b], model(t)[..., :24, :32], rtol=0, atol=1e-6)


def test_context_scores_are_the_heads_per_pixel_gradient_norms():
    rec = N.nerv_record(2, 12, 16, "fast")
    params = [t[None].requires_grad_(True) for t in N.nerv_init(rec, torch.Generator().manual_seed(1))]
    enc = N.encoding(rec, 2)
    y = torch.rand(1, 2, 3, 12, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    out, phi = N.forward(params, rec, enc, 12, 16, features=True)
    score = N.context_scores(out.detach(), phi.detach(), y, rec.head_kernel)
    norms = torch.zeros(1, 2, 12, 16)
    for f in range(2):
        for r in range(12):
            for c in range(16):
                loss = (out[0, f, :, r, c] - y[0, f, :, r, c]).square().sum()
                gw, gb = torch.autograd.grad(loss, params[-2:], retain_graph=True)
                norms[0, f, r, c] = torch.sqrt(gw.square().sum() + gb.square().sum())
    torch.testing.assert_close(norms, 2 * score, rtol=1e-4, atol=1e-6)     # Eq. 2 up to the constant 2
    mask, n = N.context_mask(score, 0.25)
    assert n == math.ceil(0.25 * 2 * 12 * 16) and int(mask.sum()) == n
    assert float(score[mask.bool()].min()) >= float(score[~mask.bool()].max())


def test_clip_tasks_are_seeded_augmented_clips(source):
    a, b = source.sample(np.random.default_rng(5), 3), source.sample(np.random.default_rng(5), 3)
    assert a.shape == (3, 4, 24, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    y = source.targets(np.random.default_rng(5), 3)
    assert y.shape == (3, 4, 3, 24, 32) and float(y.min()) >= -1 and float(y.max()) <= 1
    assert source.summary()["videos"] == 2 and source.summary()["video_frames"] == 24


# ---------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("variant", [
    dict(),                                                              # FOMAML + Meta-SGD
    dict(first_order=False, context_keep=0.5, bootstrap_steps=1),       # MAML + GradNCP
])
def test_meta_training_decreases_the_loss(source, variant):
    r = meta_train(source, _tiny(steps=16, **variant))
    assert r.tensors[0].shape == (r.tensors[0].shape[0], 160) and len(r.losses) == 16
    assert np.mean(r.losses[-4:]) < np.mean(r.losses[:4])
    assert r.lrs is not None and all(np.isfinite(v).all() for v in r.lrs)


def test_sparse_nerv_prior_has_exact_zeros(source):
    r = meta_train(source, _tiny(steps=2, sparse_rounds=2, retrain_steps=1))
    assert r.sparsity == pytest.approx(1 - 0.8 ** 2, abs=0.01)
    for t, m in zip(r.tensors, r.masks):
        assert not t[~m].any()


class _Stop(Exception):
    pass


def test_resume_is_bit_identical_to_an_uninterrupted_run(source, tmp_path):
    kw = dict(steps=4, sparse_rounds=1, retrain_steps=2, context_keep=0.5, bootstrap_steps=1, checkpoint_every=3)
    full = meta_train(source, _tiny(checkpoint=str(tmp_path / "a.npz"), **kw))

    def stop_at_4(step, total, psnr):
        if step == 4:
            raise _Stop

    cfg = _tiny(checkpoint=str(tmp_path / "b.npz"), **kw)
    with pytest.raises(_Stop):
        meta_train(source, cfg, progress=stop_at_4)
    z = load_checkpoint(tmp_path / "b.npz")
    assert int(z["step"]) == 3 and json.loads(str(z["config"]))["frames"] == 4
    resumed = meta_train(source, cfg, resume=True)
    assert resumed.resumed_from == 3
    for a, b in zip(full.tensors + full.lrs, resumed.tensors + resumed.lrs):
        assert np.array_equal(a, b)
    assert np.array_equal(full.losses, resumed.losses)
    with pytest.raises(ConfigError, match="different settings"):
        meta_train(source, _tiny(checkpoint=str(tmp_path / "b.npz"), **{**kw, "preset": "default"}), resume=True)


def test_configs_keep_siren_settings_apart():
    siren = MetaConfig().to_dict()
    assert "frames" not in siren and "preset" not in siren and siren["width"] == 64
    nerv = _tiny().to_dict()
    assert nerv["frames"] == 4 and nerv["size"] == [24, 32] and "width" not in nerv
    assert MetaConfig.from_dict(nerv) == _tiny()
    with pytest.raises(ConfigError, match="frames=4: a NeRV setting"):
        MetaConfig(frames=4).validate()
    with pytest.raises(ConfigError, match="arch='grid'"):
        MetaConfig(arch="grid").validate()


def test_prior_file_describes_the_clip(prior_path):
    prior = load_prior(prior_path)
    assert (prior.arch, prior.media, prior.size) == ("nerv", 1, (4, 24, 32))
    assert prior.record == N.nerv_record(4, 24, 32, "fast") and prior.lrs is not None
    assert prior.meta["clip"] == {"frames": 4, "height": 24, "width": 32} and prior.meta["data"]["videos"] == 2
    assert prior.meta["algorithm"] == "fomaml+meta-sgd" and "tile" not in prior.meta


# ---------------------------------------------------------------------------------------------- encoding


def test_encode_from_the_prior_decodes_bit_exactly(prior_path, monkeypatch):
    r = nfcodec.encode(CLIP, prior=str(prior_path), steps=15, epochs=0)
    types = [c.ctype for c in read_container(r.data).chunks]
    assert types[:4] == [b"NHDR", b"ARCH", b"PRIR", b"TDAT"] and r.info.header.layout == 0
    assert r.info.header.arch == 1 and r.fit.seconds > 0
    prior = load_prior(prior_path)
    assert read_container(r.data).chunks[2].data == prior.digest
    numpy_frames = nfcodec.decode(r.data, prior=str(prior_path), backend="numpy").frames
    torch_frames = nfcodec.decode(r.data, prior=str(prior_path.parent), backend="torch").frames
    assert np.array_equal(numpy_frames, r.reconstruction) and np.array_equal(torch_frames, r.reconstruction)
    with pytest.raises(PriorNotFoundError, match=f"^this stream needs prior {prior.hexdigest}; not found"):
        nfcodec.decode(r.data)
    monkeypatch.setenv("NFC_PRIOR_PATH", str(prior_path.parent))
    assert np.array_equal(nfcodec.decode(r.data).frames, r.reconstruction)
    from nfcodec.config import get_preset
    from nfcodec.prior_encoder import start_model

    model, k, _ = start_model(prior, CLIP, get_preset("fast", video=True))
    assert k == 2


def test_residuals_from_a_close_prior_code_cheaper(tmp_path):
    """A prior fitted to the clip itself: its residuals cost a fraction of the weights' bytes."""
    from fractions import Fraction

    from nfcodec.config import get_preset
    from nfcodec.prior_encoder import code_fitted, fit_from

    rec = N.nerv_record(4, 24, 32, "fast")
    cfg = get_preset("fast", video=True).replace(steps=200, epochs=0)
    model = Nerv(rec).init_weights_(torch.Generator().manual_seed(0))
    fit_from(model, CLIP, cfg)
    scratch = code_fitted(model, CLIP, 1, Fraction(25), cfg, None)          # the weights themselves
    prior = prior_from_float("nerv", rec, 1, CLIP.shape[:3], [p.detach().numpy() for p in model.parameters()],
                             meta={"inner_steps": 0})
    path = tmp_path / "self.nfp"
    path.write_bytes(pack_prior(prior))
    coded = nfcodec.encode(CLIP, prior=str(path), steps=10, epochs=0, lr=1e-5)
    assert coded.nbytes < 0.8 * scratch.nbytes and coded.psnr > scratch.psnr - 0.3, (coded.nbytes, scratch.nbytes)


def test_sparse_prior_codes_its_zeros_as_a_mask(video_dir, tmp_path):
    path = tmp_path / "sparse.nfp"
    train_prior([video_dir], path, _tiny(steps=1, sparse_rounds=1, retrain_steps=1), command="test")
    r = nfcodec.encode(CLIP, prior=str(path), steps=10, epochs=0)
    assert r.info.header.representation == 1                 # pruned: the prior's zeros are a MASK chunk
    prior = load_prior(path)
    assert prior.masks is not None and not all(m.all() for m in prior.masks)
    assert np.array_equal(nfcodec.decode(r.data, prior=str(path)).frames, r.reconstruction)


def test_gradncp_prior_adapts_with_rescaled_full_clip_steps(video_dir, tmp_path):
    path = tmp_path / "gradncp.nfp"
    train_prior([video_dir], path, _tiny(steps=1, context_keep=0.5, bootstrap_steps=1), command="test")
    prior = load_prior(path)
    assert prior.meta["test_time_rescale"] is True and prior.meta["algorithm"] == "fomaml+meta-sgd+gradncp"
    y = N.clip_targets(CLIP)
    rescaled = N.adapt_prior(prior, y, 2)
    pruned = N.adapt_prior(prior, y, 2, rescale=False)          # as in training: steps on the pruned context
    assert not all(torch.equal(a, b) for a, b in zip(rescaled, pruned))
    r = nfcodec.encode(CLIP, prior=str(path), steps=5, epochs=0)
    assert np.array_equal(nfcodec.decode(r.data, prior=str(path)).frames, r.reconstruction)


def test_mismatched_clips_and_settings_are_one_line_errors(prior_path):
    with pytest.raises(ConfigError, match=r"^prior tiny-video is for 4-frame 32x24 clips \(4x32x24\), this clip is "
                                          r"5 frames of 32x24: select frames and size to match"):
        nfcodec.encode(moving_clip(5, 24, 32), prior=str(prior_path), steps=5, epochs=0)
    with pytest.raises(ConfigError, match="arch siren videos cannot be coded from a prior"):
        nfcodec.encode(CLIP, prior=str(prior_path), arch="siren", steps=5)
    with pytest.raises(ConfigError, match="layout width-chunks cannot be coded from a prior"):
        nfcodec.encode(CLIP, prior=str(prior_path), layout="width-chunks", steps=5, epochs=0)
    with pytest.raises(ConfigError, match="is for nerv videos, not siren images|cannot be coded"):
        nfcodec.encode(CLIP[0], prior=str(prior_path), steps=5)


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture()
def run():
    from nfcodec.cli.main import cli

    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args])


def test_cli_train_encode_decode(run, video_dir, tmp_path):
    from nfcodec.video_io import read_video, write_video

    prior = tmp_path / "p.nfp"
    r = run("prior", "train", video_dir, "-o", prior, "--arch", "nerv", "--size", "4x32x24", "--preset", "fast",
            "--steps", 3, "--meta-batch", 2, "--inner-steps", 1, "--context-keep", 1, "--bootstrap-steps", 0,
            "--first-order", "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["steps"] == 3 and info["algorithm"] == "fomaml+meta-sgd"
    assert load_prior(prior).size == (4, 24, 32)
    clip = tmp_path / "c.mkv"
    write_video(clip, enumerate(CLIP), width=32, height=24, fps=25)
    out, dec = tmp_path / "c.nfc", tmp_path / "d.mkv"
    r = run("encode", clip, "-o", out, "--prior", prior, "--steps", 10, "--epochs", 0, "-q")
    assert r.exit_code == 0, r.output
    r = run("decode", out, "-o", dec, "-q")
    assert r.exit_code == 1 and r.output.startswith("nfc: error: this stream needs prior ") and \
        r.output.count("\n") == 1 and not dec.exists()
    r = run("decode", out, "-o", dec, "--prior", prior, "-q")
    assert r.exit_code == 0 and read_video(dec).frames.shape == (4, 24, 32, 3)
    r = run("encode", clip, "-o", out, "--no-prior", "--steps", 10, "--epochs", 0, "-q", "-f")
    assert r.exit_code == 0 and b"PRIR" not in out.read_bytes()
    r = run("encode", clip, "-o", out, "--prior", prior, "--frames", "0:3", "-f")
    assert r.exit_code == 1 and r.output.count("\n") == 1 and "is for 4-frame 32x24 clips (4x32x24)" in r.output


@pytest.mark.parametrize("args, message", [
    (["--arch", "nerv"], "--arch nerv needs --size FRAMESxWIDTHxHEIGHT"),
    (["--arch", "nerv", "--size", "32x24"], "NeRV priors need FRAMESxWIDTHxHEIGHT"),
    (["--arch", "nerv", "--size", "4x32x24", "--width", "8"], "--width sets a SIREN"),
    (["--c1", "4"], "--c1 is a NeRV setting: add --arch nerv"),
    (["--arch", "nerv", "--size", "4x32x24", "{image}"], "is an image: NeRV priors learn from videos"),
])
def test_cli_train_errors_are_one_line(run, video_dir, tmp_path, args, message):
    from PIL import Image

    image = tmp_path / "still.png"
    Image.fromarray(CLIP[0]).save(image)
    out = tmp_path / "p.nfp"
    r = run("prior", "train", video_dir, *[a.format(image=image) for a in args], "-o", out, "--steps", 1)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("nfc: error:") and message in lines[0], \
        r.output
    assert not out.exists()


def test_learn_helpers_are_shared():
    assert learn.context_count(10, 0.25) == 3
    with pytest.raises(InputError):
        N.ClipSource([], 2, (12, 16))


# ---------------------------------------------------------------------------------------------- the packaged prior


def test_packaged_default_video_prior():
    from nfcodec.api import _auto_prior
    from nfcodec.config import get_preset
    from nfcodec.priors import default_prior

    prior = default_prior(1)
    assert prior is not None and prior.name == "default-video"
    assert (prior.arch, prior.media, prior.size) == ("nerv", 1, (8, 144, 176))
    assert prior.record == N.nerv_record(8, 144, 176, "default")        # the default preset's network
    assert prior.nbytes < 300 * 1024 and prior.lrs is not None
    assert prior.meta["data"]["paths"] == ["../shared/data/video/bigbuckbunny.mp4"]   # carphone held out
    assert "carphone" not in str(prior.meta["command"])
    # measured not better at the presets' settings (docs/benchmarks.md): no video preset uses it
    for preset in ("fast", "default", "high"):
        cfg = get_preset(preset, video=True)
        assert _auto_prior(cfg.replace(prior="auto"), True, {}) == ""


def test_two_process_gloo_run_averages_nerv_meta_gradients(video_dir, tmp_path):
    """torchrun: the SIREN trainer's code path (each rank its own clips, averaged meta-gradients)."""
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, numpy as np
        import nfcodec.meta.nerv as N
        import nfcodec.meta.train as T
        seen = []
        class Recording(N.ClipSource):
            def targets(self, rng, n):
                y = super().targets(rng, n)
                seen.append(float(y.sum()))
                return y
        N.ClipSource = Recording
        cfg = T.MetaConfig(arch="nerv", size="2x32x24", preset="fast", inner_steps=1, inner_lr=0.3, meta_batch=1,
                           steps=2, device="cpu", first_order=True, context_keep=1.0, bootstrap_steps=0)
        prior = T.train_prior([{str(video_dir)!r}], {str(tmp_path / 'p.nfp')!r}, cfg, command="test")
        rank = int(os.environ["RANK"])
        np.savez({str(tmp_path)!r} + f"/rank{{rank}}.npz", seen=np.array(seen),
                 *[prior.values(i) for i in range(len(prior.tensors))])
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    r0, r1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    assert not np.array_equal(r0["seen"], r1["seen"])
    assert all(np.array_equal(r0[k], r1[k]) for k in r0.files if k != "seen")
    prior = load_prior(tmp_path / "p.nfp")
    assert prior.meta["world_size"] == 2 and prior.arch == "nerv"
