"""Meta-learning trainer (nfcodec.meta, ``nfc prior train``): algorithms, checkpoints, torchrun, CLI.

Everything runs on tiny SIRENs and 8x8 / 16x16 crops of synthetic images (the file takes well under
a minute on a 2-core CPU, the 2-process torchrun test included).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nfcodec.errors import ConfigError, InputError
from nfcodec.meta import learn
from nfcodec.meta.data import TaskSource, parse_tile_size, tile_grid_crops, to_targets
from nfcodec.meta.train import MetaConfig, load_checkpoint, meta_train
from nfcodec.models.tiled import forward, grid_coords, siren_init, siren_shapes

ROOT = Path(__file__).resolve().parents[1]
W0 = 30.0


def _smooth_image(seed: int, h: int = 96, w: int = 96) -> np.ndarray:
    """A natural-ish test picture: low-frequency colour waves plus a few flat rectangles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(4):
            f = rng.uniform(0.5, 4.0, 2)
            img[..., c] += rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * (f[0] * yy + f[1] * xx) + rng.uniform(0, 6.3))
    for _ in range(3):
        r0, c0 = rng.integers(0, h - 20), rng.integers(0, w - 20)
        img[r0:r0 + rng.integers(8, 20), c0:c0 + rng.integers(8, 20)] = rng.uniform(-1, 1, 3)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("meta_data")
    for i in range(3):
        Image.fromarray(_smooth_image(i)).save(d / f"train{i}.png")
    return d


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    """Targets of the 16x16 tiles of an image never trained on."""
    return to_targets(tile_grid_crops(_smooth_image(99), (16, 16), limit=12))


@pytest.fixture(scope="module")
def source(data_dir) -> TaskSource:
    return TaskSource([data_dir], (16, 16))


def _tiny(**kw) -> MetaConfig:
    base = dict(width=32, depth=2, size=(16, 16), inner_steps=3, inner_lr=3e-2, meta_batch=4, steps=30,
                meta_lr=3e-3, device="cpu", seed=0, context_keep=1.0, bootstrap_steps=0)
    base.update(kw)
    return MetaConfig(**base)


def _k_step_psnr(tensors, lrs, y, cfg: MetaConfig, masks=None) -> float:
    x = grid_coords(*cfg.size)
    params = learn.adapt(tensors, lrs if lrs is not None else cfg.inner_lr, x, y, cfg.inner_steps, masks=masks,
                         context_keep=cfg.context_keep, rescale=cfg.test_time_rescale)
    with torch.no_grad():
        return float(learn.psnr(learn.task_mse(params, x.unsqueeze(0), y, W0, W0).mean()))


def _random_init(cfg: MetaConfig) -> list[torch.Tensor]:
    shapes = siren_shapes(2, 3, cfg.width, cfg.depth)
    return [t[0] for t in siren_init(1, shapes, W0, torch.Generator().manual_seed(cfg.seed))]


# ---------------------------------------------------------------------------------------------- building blocks


def test_features_are_the_forward_pass():
    shapes = siren_shapes(2, 3, 8, 2)
    params = siren_init(3, shapes, W0, torch.Generator().manual_seed(1))
    x = grid_coords(8, 8).unsqueeze(0)
    phi, out = learn.features(params, x, W0, W0)
    assert phi.shape == (3, 64, 8)
    assert torch.equal(out, forward(params, x, W0, W0))


@pytest.mark.parametrize("keep", [0.25, 0.3, 1 / 64])
def test_context_pruning_keeps_the_largest_last_layer_gradients(keep):
    shapes = siren_shapes(2, 3, 8, 2)
    params = [p.requires_grad_(True) for p in siren_init(3, shapes, W0, torch.Generator().manual_seed(2))]
    x = grid_coords(8, 8).unsqueeze(0)
    y = torch.rand(3, 64, 3, generator=torch.Generator().manual_seed(3)) * 2 - 1
    idx = learn.select_context(params, x, y, keep, W0, W0)
    assert idx.shape == (3, math.ceil(keep * 64))
    # autograd: per-sample gradient of ||f(x_j) - y_j||^2 wrt the last layer (W_head, b_head) of each task
    norms = torch.zeros(3, 64)
    out = forward(params, x, W0, W0)
    for j in range(64):
        loss = (out[:, j] - y[:, j]).square().sum()
        gw, gb = torch.autograd.grad(loss, params[-2:], retain_graph=True)
        norms[:, j] = torch.sqrt(gw.square().sum((1, 2)) + gb.square().sum(1))
    score = learn.context_scores(params, x, y, W0, W0)
    torch.testing.assert_close(norms, 2 * score, rtol=1e-4, atol=1e-6)   # Eq. 2 up to the constant 2
    for b in range(3):
        want = set(torch.topk(norms[b], idx.shape[1]).indices.tolist())
        assert set(idx[b].tolist()) == want


def test_pruned_inner_step_trains_on_the_selected_points_only():
    shapes = siren_shapes(2, 3, 8, 1)
    params = [p.requires_grad_(True) for p in siren_init(2, shapes, W0, torch.Generator().manual_seed(4))]
    x = grid_coords(8, 8).unsqueeze(0)
    y = torch.rand(2, 64, 3, generator=torch.Generator().manual_seed(5)) * 2 - 1
    idx = learn.select_context(params, x, y, 0.25, W0, W0)
    new, loss = learn.inner_step(params, 0.01, x, y, w0_first=W0, w0_hidden=W0, keep=0.25)
    xs, ys, _ = learn.gather_context(x, y, idx)
    want = learn.task_mse(params, xs, ys, W0, W0)
    torch.testing.assert_close(loss, want.detach())
    g = torch.autograd.grad(want.sum(), params)
    for p, n, gi in zip(params, new, g):
        torch.testing.assert_close(n, p - 0.01 * gi)


def test_bootstrap_adds_lambda_times_the_distance(source):
    cfg = _tiny()
    theta = [t.requires_grad_(True) for t in _random_init(cfg)]
    x = grid_coords(16, 16).unsqueeze(0)
    y = source.targets(np.random.default_rng(0), 3)
    common = dict(steps=3, w0_first=W0, w0_hidden=W0, keep=0.25)
    plain, s0 = learn.meta_objective(theta, 1e-2, x, y, **common)
    boot, s1 = learn.meta_objective(theta, 1e-2, x, y, bootstrap_steps=5, bootstrap_lambda=100.0, **common)
    assert s1["distance"] > 0
    assert s1["boot_mse"] < s1["mse"]            # the target is better than theta_K: a useful target
    assert float(boot.detach()) == pytest.approx(float(plain.detach()) + 100.0 * s1["distance"], rel=1e-5)
    # the meta-gradient sees the distance through theta_K only (the target is a constant)
    g = torch.autograd.grad(boot, theta)
    assert all(torch.isfinite(t).all() for t in g)


def test_rescaled_gradients_have_the_pruned_norm():
    full = [torch.randn(3, 4, 5), torch.randn(3, 4)]
    pruned = [torch.randn(3, 4, 5) * 3, torch.randn(3, 4) * 3]
    out = learn.rescale_gradients(full, pruned)

    def norm(gs):
        return torch.sqrt(sum(g.reshape(3, -1).square().sum(1) for g in gs))

    torch.testing.assert_close(norm(out), norm(pruned))
    ratio = out[0] / full[0]
    torch.testing.assert_close(ratio, ratio[:, :1, :1].expand_as(ratio))   # same direction per task


def test_adapt_reproduces_the_training_inner_loop(source):
    cfg = _tiny()
    theta = _random_init(cfg)
    lrs = [torch.rand_like(t) * 0.02 for t in theta]
    x = grid_coords(16, 16)
    y = source.targets(np.random.default_rng(1), 2)
    for keep in (1.0, 0.25):
        trained, _ = learn.inner_loop(learn.expand([t.requires_grad_(True) for t in theta], 2), lrs, x.unsqueeze(0), y,
                                      3, w0_first=W0, w0_hidden=W0, create_graph=True, keep=keep)
        got = learn.adapt([t.detach().numpy() for t in theta], [t.numpy() for t in lrs], x, y, 3, context_keep=keep)
        for a, b in zip(got, trained):
            torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------- data


def test_tasks_are_seeded_augmented_crops(data_dir, tmp_path):
    from nfcodec.video_io import write_video

    frames = np.stack([_smooth_image(10 + k, 32, 48) for k in range(6)])
    write_video(tmp_path / "clip.mkv", enumerate(frames), width=48, height=32)
    src = TaskSource([data_dir, tmp_path / "clip.mkv"], "16x16", video_stride=2)
    assert src.summary() == {"files": 4, "images": 3, "videos": 1, "video_frames": 3,
                             "pixels": 3 * 96 * 96 + 3 * 32 * 48}
    a = src.targets(np.random.default_rng(7), 5)
    b = src.targets(np.random.default_rng(7), 5)
    assert a.shape == (5, 256, 3) and torch.equal(a, b)
    assert float(a.min()) >= -1 and float(a.max()) <= 1
    assert not torch.equal(a, src.targets(np.random.default_rng(8), 5))
    assert parse_tile_size("32x16") == (16, 32)
    with pytest.raises(ConfigError):
        parse_tile_size("0x16")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images or videos"):
        TaskSource([tmp_path / "empty"], 16)


# ---------------------------------------------------------------------------------------------- algorithms

VARIANTS = {
    "maml": dict(meta_sgd=False),
    "fomaml": dict(meta_sgd=False, first_order=True),
    "meta-sgd": dict(meta_sgd=True),
    "gradncp-pruning": dict(context_keep=0.25, inner_steps=4),
    "gradncp-bootstrap": dict(context_keep=0.25, inner_steps=4, bootstrap_steps=3),
    "sparse": dict(steps=20, sparse_rounds=2, retrain_steps=5),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_algorithm_beats_a_random_init_on_held_out_tiles(variant, source, held_out):
    cfg = _tiny(**VARIANTS[variant])
    result = meta_train(source, cfg)
    assert result.steps == cfg.total_steps == 30
    assert np.isfinite(result.losses).all()
    base = _k_step_psnr(_random_init(cfg), None, held_out, cfg)
    got = _k_step_psnr(result.tensors, result.lrs, held_out, cfg, result.masks)
    assert got > base + 1.0, (variant, base, got)
    # and the training K-step loss went down over the run
    assert result.losses[-5:].mean() < result.losses[:5].mean()
    if cfg.meta_sgd:            # the step sizes are meta-parameters too
        assert any(not np.allclose(lr, cfg.inner_lr, rtol=1e-4, atol=0) for lr in result.lrs)
    else:
        assert result.lrs is None


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_sparse_rounds_reach_the_target_sparsity_with_exact_zeros(source, method):
    cfg = _tiny(steps=4, sparse_rounds=3, retrain_steps=2, prune_method=method, meta_batch=2)
    result = meta_train(source, cfg)
    assert abs(result.sparsity - (1 - 0.8 ** 3)) < 0.01
    for i, (t, m) in enumerate(zip(result.tensors, result.masks)):
        assert (t[~m] == 0).all()
        if i % 2:                                   # biases are never pruned
            assert m.all()
    from nfcodec.meta.train import build_prior, prior_meta
    from nfcodec.priors import pack_prior, read_prior

    prior = read_prior(pack_prior(build_prior(result, prior_meta(result, command="test"))))
    assert prior.meta["sparsity"] == pytest.approx(result.sparsity)
    for i, m in enumerate(prior.masks):
        assert (prior.values(i)[~m] == 0).all()


# ---------------------------------------------------------------------------------------------- checkpoints


class _Stop(Exception):
    pass


def test_resume_is_bit_identical_to_an_uninterrupted_run(source, tmp_path):
    kw = dict(width=16, depth=2, inner_steps=2, meta_batch=2, steps=6, sparse_rounds=2, retrain_steps=2,
              context_keep=0.5, bootstrap_steps=2, checkpoint_every=4)
    full = meta_train(source, _tiny(checkpoint=str(tmp_path / "a.npz"), **kw))

    def stop_at_9(step, total, psnr):
        if step == 9:
            raise _Stop

    cfg = _tiny(checkpoint=str(tmp_path / "b.npz"), **kw)
    with pytest.raises(_Stop):
        meta_train(source, cfg, progress=stop_at_9)
    z = load_checkpoint(tmp_path / "b.npz")               # np.load(allow_pickle=False) inside
    assert int(z["step"]) == 8 and int(z["rounds_done"]) == 1 and "mask_0" in z
    assert json.loads(str(z["config"]))["steps"] == 6
    notes = []
    resumed = meta_train(source, cfg, resume=True, log=notes.append)
    assert resumed.resumed_from == 8 and "resuming" in notes[0]
    for a, b in zip(full.tensors + full.lrs, resumed.tensors + resumed.lrs):
        assert np.array_equal(a, b)
    assert all(np.array_equal(a, b) for a, b in zip(full.masks, resumed.masks))
    assert np.array_equal(full.losses, resumed.losses)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary files left
    with pytest.raises(ConfigError, match="different settings"):
        meta_train(source, _tiny(checkpoint=str(tmp_path / "b.npz"), **{**kw, "inner_steps": 3}), resume=True)


# ---------------------------------------------------------------------------------------------- torchrun


def test_two_process_gloo_run_averages_meta_gradients(data_dir, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, numpy as np
        import nfcodec.meta.train as T
        seen = []
        class Recording(T.TaskSource):
            def targets(self, rng, n):
                y = super().targets(rng, n)
                seen.append(float(y.sum()))
                return y
        T.TaskSource = Recording
        cfg = T.MetaConfig(width=8, depth=1, size=(8, 8), inner_steps=2, meta_batch=2, steps=4, device="cpu",
                           meta_lr=1e-3, checkpoint={str(tmp_path / 'ck.npz')!r}, checkpoint_every=2)
        prior = T.train_prior([{str(data_dir)!r}], {str(tmp_path / 'p.nfp')!r}, cfg, command="test")
        rank = int(os.environ["RANK"])
        np.savez({str(tmp_path)!r} + f"/rank{{rank}}.npz", seen=np.array(seen),
                 *[prior.values(i) for i in range(len(prior.tensors))])
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    r0, r1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    assert not np.array_equal(r0["seen"], r1["seen"])          # each rank draws its own tasks
    params = [k for k in r0.files if k != "seen"]
    assert all(np.array_equal(r0[k], r1[k]) for k in params)   # averaged meta-gradients: identical parameters
    from nfcodec.priors import load_prior

    prior = load_prior(tmp_path / "p.nfp")
    assert prior.meta["world_size"] == 2 and prior.meta["effective_meta_batch"] == 4
    ck = load_checkpoint(tmp_path / "ck.npz")
    assert int(ck["world_size"]) == 2 and len(json.loads(str(ck["rng_states"]))) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture()
def cli_train():
    from nfcodec.cli.prior_train_cmd import train

    return lambda *args: CliRunner().invoke(train, [str(a) for a in args])


def test_cli_writes_a_prior(cli_train, data_dir, tmp_path):
    out = tmp_path / "p.nfp"
    r = cli_train(data_dir, "-o", out, "--width", 8, "--depth", 1, "--size", "8x8", "--steps", 3, "--meta-batch", 2,
                  "--context-keep", 0.5, "--inner-steps", 2, "--json", "--device", "cpu")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["steps"] == 3 and info["algorithm"] == "maml+meta-sgd+gradncp"
    from nfcodec.priors import load_prior

    prior = load_prior(out)
    assert prior.meta["test_time_rescale"] is True and prior.meta["context_keep"] == 0.5
    assert prior.meta["data"]["images"] == 3 and prior.lrs is not None and prior.size == (1, 8, 8)
    assert "command" in prior.meta and prior.meta["settings"]["inner_steps"] == 2


@pytest.mark.parametrize("args, message", [
    (["{empty}"], "no images or videos found"),
    (["{bad}"], "not a readable image"),
    (["{data}", "--size", "8y8"], "expected WIDTHxHEIGHT"),
    (["{data}", "--size", "1x8"], "tile sides"),
    (["{missing}"], "not found"),
    (["{data}", "--resume"], "--resume needs --checkpoint"),
    (["{data}", "--device", "tpu"], "not a device"),
])
def test_cli_errors_are_one_line(cli_train, data_dir, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    names = {"empty": tmp_path / "empty", "bad": tmp_path / "bad.png", "data": data_dir, "missing": tmp_path / "nope"}
    out = tmp_path / "p.nfp"
    r = cli_train(*[a.format(**names) for a in args], "-o", out, "--steps", 1)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nfc: error:") and message in lines[0], r.output
    assert not out.exists()


def test_cli_refuses_to_overwrite(cli_train, data_dir, tmp_path):
    out = tmp_path / "p.nfp"
    out.write_bytes(b"keep me")
    r = cli_train(data_dir, "-o", out, "--steps", 1)
    assert r.exit_code == 1 and "exists" in r.output and out.read_bytes() == b"keep me"
