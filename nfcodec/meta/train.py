"""The meta-learning trainer behind ``nfc prior train``: checkpoints, resume, devices, torchrun.

:func:`train_prior` reads the training data (:class:`~nfcodec.meta.data.TaskSource`; NeRV priors:
:class:`~nfcodec.meta.nerv.ClipSource`), runs
:func:`meta_train` and writes the prior (``nfcodec.priors``) atomically.  :func:`meta_train` is the
loop itself: ``steps`` dense meta-steps, then ``sparse_rounds`` x (prune, ``retrain_steps``
meta-steps) for Meta-SparseINR; each meta-step draws ``meta_batch`` tasks, runs the inner loop
(:func:`nfcodec.meta.learn.meta_objective`; NeRV: :func:`nfcodec.meta.nerv.meta_objective`) and
takes one Adam step on the initialisation (and on the Meta-SGD step sizes).  The architecture enters
through one object (``_SirenTasks`` or :class:`nfcodec.meta.nerv.NervTasks`: shapes, initial draw,
outer loss); everything else is shared.

Checkpoints (``checkpoint`` every ``checkpoint_every`` steps and at the end) are ``np.savez``
archives written to a temporary file and renamed into place, read back with
``np.load(allow_pickle=False)``; they hold everything the loop's future depends on (parameters,
step sizes, masks, Adam moments, the step counter, every process's data generator state as JSON,
the per-step losses and the configuration as JSON), so a resumed run is bit-identical to an
uninterrupted one (same device and world size).

Several processes: launched by ``torchrun`` (``WORLD_SIZE > 1``) the same code initialises
``torch.distributed`` (NCCL on GPUs, Gloo on CPUs), each rank draws its own tasks (data generator
seeded with ``(seed, rank)``), the meta-gradients are averaged with ``all_reduce`` before every outer
step (so all ranks hold the same parameters), and only rank 0 reports progress and writes files.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..models.tiled import grid_coords, siren_init, siren_shapes
from . import learn
from .data import TaskSource, parse_tile_size

__all__ = ["MetaConfig", "MetaResult", "meta_train", "train_prior", "prior_meta", "build_prior",
           "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "nfcodec-meta-checkpoint/1"
#: Config fields that may differ between a checkpoint and the run resuming it.
_RESUME_FREE = ("device", "checkpoint", "checkpoint_every")
#: Steps averaged for the reported final meta-loss.
_FINAL_WINDOW = 100
#: Settings of NeRV priors only (left out of a SIREN config's dict: SIREN checkpoints and priors
#: are as before) and of SIREN priors only (left out of a NeRV config's).
_NERV_FIELDS = ("frames", "preset", "c1", "c2", "min_channels", "mlp_hidden")
_SIREN_FIELDS = ("width", "depth", "w0_first", "w0_hidden")
_VIDEO_PRESETS = ("fast", "default", "high")

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class MetaConfig:
    """Everything that defines a meta-training run (frozen; saved as JSON in checkpoints and priors).

    Defaults: GradNCP as in its paper (second-order MAML, K = 16 inner steps on the 25% of each
    tile with the largest last-layer gradient norm, bootstrap target of L = 5 full-tile steps,
    lambda = 100) with Meta-SGD step sizes, dense: the best prior of docs/meta-learning.md section 8.
    Plain Learnit / MAML: ``inner_steps=4, context_keep=1, bootstrap_steps=0, meta_sgd=False``.
    Meta-SparseINR: ``sparse_rounds=R`` (``prune_rate`` 0.2 of the surviving weights per round).

    NeRV priors (``arch="nerv"``, :mod:`nfcodec.meta.nerv`): tasks are clips of ``frames`` frames at
    ``size``; the network is the video preset ``preset``'s, sized for that clip as ``nfc encode``
    sizes it, or the preset with ``c1``, ``c2``, ``min_channels``, ``mlp_hidden`` where given.
    ``size`` may be given as ``"FRAMESxWIDTHxHEIGHT"`` text (e.g. ``"8x176x144"``), which sets ``frames``.
    ``video_stride`` is the largest temporal stride of a task's frames and each video's first
    ``max_video_frames * video_stride`` frames are read.
    """

    arch: str = "siren"
    width: int = 64
    depth: int = 3
    size: tuple[int, int] = (64, 64)           #: (tile height, tile width)
    w0_first: float = 30.0
    w0_hidden: float = 30.0
    # inner loop
    inner_steps: int = 16                     #: K
    inner_lr: float = 1e-2                    #: alpha (Meta-SGD: the initial value of every step size)
    first_order: bool = False
    meta_sgd: bool = True
    # GradNCP
    context_keep: float = 0.25                #: gamma, fraction of coordinates per inner step (1: off)
    bootstrap_steps: int = 5                  #: L (0: off)
    bootstrap_lambda: float = 100.0           #: lambda
    bootstrap_lr_scale: float = 5.0           #: target steps use this multiple of the step sizes
    rescale: bool = True                      #: priors trained with gamma < 1 expect Eq. 4 at test time
    # Meta-SparseINR
    sparse_rounds: int = 0                    #: R (0: dense)
    prune_rate: float = 0.2
    prune_method: str = "magnitude"           #: magnitude | random (the paper's baseline)
    retrain_steps: Optional[int] = None       #: meta-steps after each pruning round (None: steps // 5)
    # outer loop
    meta_batch: int = 8                       #: tasks per meta-step per process
    steps: int = 2000                         #: dense meta-steps
    meta_lr: float = 3e-4                     #: Adam, on the initialisation
    step_size_lr: Optional[float] = None      #: Adam on the Meta-SGD step sizes (None: meta_lr * inner_lr)
    clip_grad: float = 1.0                    #: global norm clip of the meta-gradient (0: off)
    seed: int = 0
    device: str = "auto"
    checkpoint: Optional[str] = None
    checkpoint_every: int = 100
    # data
    augment: bool = True
    min_scale: float = 0.5
    max_scale: float = 1.0
    video_stride: int = 4
    max_video_frames: int = 64
    # NeRV priors (arch="nerv")
    frames: int = 8                           #: frames of a task's clip
    preset: str = "default"                   #: the video preset whose (clip-sized) network is learned
    c1: Optional[int] = None
    c2: Optional[int] = None
    min_channels: Optional[int] = None
    mlp_hidden: Optional[int] = None

    def __post_init__(self) -> None:
        if isinstance(self.size, str) and self.arch == "nerv" and self.size.lower().count("x") == 2:
            from .nerv import parse_clip_size

            frames, h, w = parse_clip_size(self.size)
            object.__setattr__(self, "frames", frames)
            object.__setattr__(self, "size", (h, w))
            return
        object.__setattr__(self, "size", parse_tile_size(self.size) if isinstance(self.size, str)
                           else tuple(int(v) for v in self.size))

    # ------------------------------------------------------------------ derived
    @property
    def retrain(self) -> int:
        """Meta-steps after each pruning round."""
        return max(1, self.steps // 5) if self.retrain_steps is None else self.retrain_steps

    @property
    def step_size_meta_lr(self) -> float:
        """Adam learning rate of the Meta-SGD step sizes: relative to their size, as ``meta_lr`` is to
        the weights' (an absolute ``meta_lr`` would move ``alpha ~ 1e-2`` by 10% per step and diverge)."""
        return self.meta_lr * self.inner_lr if self.step_size_lr is None else self.step_size_lr

    @property
    def total_steps(self) -> int:
        return self.steps + (self.sparse_rounds * self.retrain if self.sparse_rounds else 0)

    @property
    def test_time_rescale(self) -> bool:
        """Whether the prior expects Eq. 4 re-scaling at test time (trained with pruned contexts)."""
        return self.rescale and self.context_keep < 1.0

    def algorithm(self) -> str:
        """A short name: ``maml``/``fomaml`` + ``meta-sgd`` + ``gradncp`` + ``sparse``."""
        parts = ["fomaml" if self.first_order else "maml"]
        if self.meta_sgd:
            parts.append("meta-sgd")
        if self.context_keep < 1.0 or self.bootstrap_steps:
            parts.append("gradncp")
        if self.sparse_rounds:
            parts.append("sparse" if self.prune_method == "magnitude" else "random-sparse")
        return "+".join(parts)

    def validate(self) -> "MetaConfig":
        """Raises ConfigError naming the first bad field; returns self."""
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"{name}={getattr(self, name)!r}: {why}")

        if self.arch not in ("siren", "nerv"):
            raise bad("arch", "priors are meta-trained for siren (image tiles) or nerv (clips)")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if self.arch == "siren":
            for name in _NERV_FIELDS:
                if getattr(self, name) != defaults[name]:
                    raise bad(name, "a NeRV setting: needs arch nerv")
        else:
            from .nerv import MAX_CLIP_FRAMES

            if not 1 <= self.frames <= MAX_CLIP_FRAMES:
                raise bad("frames", f"must be in [1, {MAX_CLIP_FRAMES}]")
            if self.preset not in _VIDEO_PRESETS:
                raise bad("preset", f"a video preset: {', '.join(_VIDEO_PRESETS)}")
            for name in ("c1", "c2", "min_channels", "mlp_hidden"):
                if getattr(self, name) is not None and not 1 <= getattr(self, name) <= 4096:
                    raise bad(name, "must be in [1, 4096]")
        if not 1 <= self.width <= 4096:
            raise bad("width", "must be in [1, 4096]")
        if not 1 <= self.depth <= 64:
            raise bad("depth", "must be in [1, 64]")
        parse_tile_size(self.size)
        if self.step_size_lr is not None and not (np.isfinite(self.step_size_lr) and self.step_size_lr > 0):
            raise bad("step_size_lr", "must be a positive number (or None: meta_lr * inner_lr)")
        for name in ("w0_first", "w0_hidden", "inner_lr", "meta_lr"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise bad(name, "must be a positive number")
        if self.inner_steps < 1:
            raise bad("inner_steps", "must be >= 1")
        if not 0 < self.context_keep <= 1:
            raise bad("context_keep", "must be in (0, 1] (1: no context pruning)")
        if self.bootstrap_steps < 0:
            raise bad("bootstrap_steps", "must be >= 0 (0: off)")
        if self.bootstrap_lambda < 0 or self.bootstrap_lr_scale <= 0:
            raise bad("bootstrap_lambda", "lambda >= 0 and bootstrap_lr_scale > 0 required")
        if self.sparse_rounds < 0:
            raise bad("sparse_rounds", "must be >= 0")
        if not 0 < self.prune_rate < 1:
            raise bad("prune_rate", "must be in (0, 1)")
        if self.prune_method not in ("magnitude", "random"):
            raise bad("prune_method", "magnitude or random")
        if self.retrain_steps is not None and self.retrain_steps < 1:
            raise bad("retrain_steps", "must be >= 1")
        if self.meta_batch < 1:
            raise bad("meta_batch", "must be >= 1")
        if self.steps < 1:
            raise bad("steps", "must be >= 1")
        if self.clip_grad < 0:
            raise bad("clip_grad", "must be >= 0 (0: off)")
        if self.checkpoint_every < 1:
            raise bad("checkpoint_every", "must be >= 1")
        if not 0 < self.min_scale <= self.max_scale:
            raise bad("min_scale", "need 0 < min_scale <= max_scale")
        if self.video_stride < 1 or self.max_video_frames < 1:
            raise bad("video_stride", "video_stride and max_video_frames must be >= 1")
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        for name in (_NERV_FIELDS if self.arch == "siren" else _SIREN_FIELDS):
            d.pop(name)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MetaConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown meta-learning settings: {', '.join(sorted(unknown))}")
        return cls(**{k: (tuple(v) if k == "size" else v) for k, v in d.items()})


@dataclass
class MetaResult:
    """What :func:`meta_train` learned (numpy, canonical SIREN order) and how it went."""

    config: MetaConfig
    tensors: list[np.ndarray]                 #: float32, one network
    lrs: Optional[list[np.ndarray]]           #: Meta-SGD step sizes (same shapes) or None
    masks: Optional[list[np.ndarray]]         #: bool per tensor (biases all True) for sparse priors
    losses: np.ndarray                        #: per meta-step outer MSE (mean over all processes' tasks)
    seconds: float
    device: str
    rank: int = 0
    world_size: int = 1
    resumed_from: int = 0

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def final_mse(self) -> float:
        return float(np.mean(self.losses[-_FINAL_WINDOW:])) if len(self.losses) else float("nan")

    @property
    def final_psnr(self) -> float:
        return learn.psnr(self.final_mse)

    @property
    def sparsity(self) -> float:
        """Fraction of weight-matrix entries that are exact zeros by mask (0 for dense priors)."""
        if self.masks is None:
            return 0.0
        w = learn.weight_indices(len(self.masks))
        return 1.0 - sum(int(self.masks[i].sum()) for i in w) / sum(self.masks[i].size for i in w)


# ---------------------------------------------------------------------------------------------- Adam


class _Adam:
    """Adam (Kingma & Ba) on a list of tensors (a learning rate each), plain tensors as state (checkpointable)."""

    def __init__(self, tensors: Sequence[torch.Tensor], lrs: Sequence[float], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.tensors, self.lrs, self.betas, self.eps = list(tensors), list(lrs), betas, eps
        self.m = [torch.zeros_like(t) for t in self.tensors]
        self.v = [torch.zeros_like(t) for t in self.tensors]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, g, m, v, lr in zip(self.tensors, grads, self.m, self.v, self.lrs):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-lr)


# ---------------------------------------------------------------------------------------------- processes


class _Dist:
    """One process (world 1) or a torchrun rank (``WORLD_SIZE > 1``): device, rank, collectives."""

    def __init__(self, device_name: str) -> None:
        from ..devices import resolve_device

        self.world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        self.rank, self.owned = 0, False
        self.device = resolve_device(device_name)     # checks the name (and that a GPU exists) first
        if self.world <= 1:
            self.world = 1
            return
        import torch.distributed as dist

        if self.device.type == "cuda":                # one GPU per local rank, whatever index was named
            local = int(os.environ.get("LOCAL_RANK", "0") or 0)
            self.device = torch.device("cuda", local % torch.cuda.device_count())
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.owned = True
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def close(self) -> None:
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owned = False

    def average(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The mean over ranks of each tensor (one flat all_reduce)."""
        if self.world == 1:
            return list(tensors)
        import torch.distributed as dist

        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world
        out, pos = [], 0
        for t in tensors:
            out.append(flat[pos:pos + t.numel()].view_as(t))
            pos += t.numel()
        return out

    def broadcast(self, tensors: Sequence[torch.Tensor]) -> None:
        if self.world > 1:
            import torch.distributed as dist

            with torch.no_grad():
                for t in tensors:
                    dist.broadcast(t, 0)

    def gather_text(self, text: str) -> list[str]:
        """Every rank's ``text`` (on every rank), through byte tensors (no pickling)."""
        if self.world == 1:
            return [text]
        import torch.distributed as dist

        data = torch.tensor(list(text.encode()), dtype=torch.uint8, device=self.device)
        n = torch.tensor([data.numel()], device=self.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        dist.all_gather(sizes, n)
        top = int(max(int(s) for s in sizes))
        padded = torch.zeros(top, dtype=torch.uint8, device=self.device)
        padded[:data.numel()] = data
        bufs = [torch.zeros_like(padded) for _ in range(self.world)]
        dist.all_gather(bufs, padded)
        return [bytes(b[:int(s)].cpu().tolist()).decode() for b, s in zip(bufs, sizes)]


# ---------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``np.savez`` archive atomically (temporary file in the same folder + ``os.replace``)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint (``np.load(allow_pickle=False)``).

    Raises:
        InputError: unreadable file or not a meta-learning checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable meta-learning checkpoint ({e.__class__.__name__}: {e})") from None
    if "format" not in arrays or str(arrays["format"]) != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a meta-learning checkpoint ({CHECKPOINT_FORMAT})")
    return arrays


def _text(a: np.ndarray) -> str:
    return str(a.item() if isinstance(a, np.ndarray) else a)


# ---------------------------------------------------------------------------------------------- the loop


def meta_train(source: Any, config: MetaConfig, *, progress: Optional[Progress] = None, resume: bool = False,
               log: Optional[Callable[[str], None]] = None) -> MetaResult:
    """Meta-train a SIREN initialisation on tasks from ``source`` (an object with
    ``targets(rng, n) -> (n, th*tw, 3)`` float tensors, e.g. :class:`TaskSource`), or with
    ``arch="nerv"`` a NeRV one (``targets(rng, n) -> (n, F, 3, H, W)``, e.g.
    :class:`nfcodec.meta.nerv.ClipSource`).

    Args:
        progress: ``progress(step, total, psnr)`` after each meta-step (rank 0 only); ``psnr`` is the
            running mean K-step PSNR of the training tasks.
        resume: continue from ``config.checkpoint`` when it exists (else start from scratch).
        log: receives one-line notes (resuming, ...); rank 0 only.

    Raises:
        ConfigError: bad settings, or a checkpoint written with different settings.
        InputError: an unreadable checkpoint.
    """
    cfg = config.validate()
    say = log or (lambda msg: None)
    dist = _Dist(cfg.device)
    try:
        return _loop(source, cfg, dist, progress if dist.rank == 0 else None, resume,
                     say if dist.rank == 0 else (lambda msg: None))
    finally:
        dist.close()


class _SirenTasks:
    """What the loop needs of SIREN tiles: shapes, the initial draw, the outer loss of a meta-batch."""

    def __init__(self, cfg: MetaConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.shapes = siren_shapes(2, 3, cfg.width, cfg.depth)
        self.x = grid_coords(*cfg.size).to(device).unsqueeze(0)

    def init(self, gen: torch.Generator) -> list[torch.Tensor]:
        return [t[0].contiguous() for t in siren_init(1, self.shapes, self.cfg.w0_hidden, gen)]

    def objective(self, theta: Sequence[torch.Tensor], lrs: Any, y: torch.Tensor,
                  masks: Optional[Sequence[Optional[torch.Tensor]]]) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        return learn.meta_objective(
            theta, lrs, self.x, y, steps=cfg.inner_steps, w0_first=cfg.w0_first,
            w0_hidden=cfg.w0_hidden, first_order=cfg.first_order, keep=cfg.context_keep,
            bootstrap_steps=cfg.bootstrap_steps, bootstrap_lambda=cfg.bootstrap_lambda,
            bootstrap_lr_scale=cfg.bootstrap_lr_scale, masks=masks)


def _tasks(cfg: MetaConfig, device: torch.device) -> Any:
    if cfg.arch == "nerv":
        from .nerv import NervTasks

        return NervTasks(cfg, device)
    return _SirenTasks(cfg, device)


def _loop(source: Any, cfg: MetaConfig, dist: _Dist, progress: Optional[Progress], resume: bool,
          say: Callable[[str], None]) -> MetaResult:
    device = dist.device
    tasks = _tasks(cfg, device)
    shapes = tasks.shapes
    n = len(shapes)
    gen = torch.Generator().manual_seed(cfg.seed)
    theta = [t.to(device).requires_grad_(True) for t in tasks.init(gen)]
    lrs = [torch.full_like(t, cfg.inner_lr).requires_grad_(True) for t in theta] if cfg.meta_sgd else None
    masks: list[Optional[torch.Tensor]] = [None] * n
    leaves = theta + (lrs or [])
    adam = _Adam(leaves, [cfg.meta_lr] * len(theta) + [cfg.step_size_meta_lr] * len(lrs or []))
    rng = np.random.default_rng([cfg.seed, dist.rank])
    losses: list[float] = []
    rounds_done, start = 0, 0

    ckpt = Path(cfg.checkpoint) if cfg.checkpoint else None
    if resume and ckpt is not None and ckpt.exists():
        z = load_checkpoint(ckpt)
        saved = json.loads(_text(z["config"]))
        mine = cfg.to_dict()
        free = _RESUME_FREE + (("steps",) if not cfg.sparse_rounds and int(z["step"]) <= cfg.steps else ())
        diff = sorted(k for k in set(saved) | set(mine) if k not in free and saved.get(k) != mine.get(k))
        if diff:
            raise ConfigError(f"{ckpt} was written with different settings ({', '.join(diff)}: "
                              f"{', '.join(f'{saved.get(k)!r}' for k in diff)}); resume with the same settings "
                              "or start a new checkpoint")
        with torch.no_grad():
            for i, t in enumerate(theta):
                t.copy_(torch.from_numpy(z[f"param_{i}"]))
            if lrs is not None:
                for i, t in enumerate(lrs):
                    t.copy_(torch.from_numpy(z[f"lr_{i}"]))
            for j, (m, v) in enumerate(zip(adam.m, adam.v)):
                m.copy_(torch.from_numpy(z[f"adam_m_{j}"]))
                v.copy_(torch.from_numpy(z[f"adam_v_{j}"]))
        adam.t = int(z["adam_t"])
        masks = [torch.from_numpy(z[f"mask_{i}"]).to(device) if f"mask_{i}" in z else None for i in range(n)]
        rounds_done, start = int(z["rounds_done"]), int(z["step"])
        losses = [float(v) for v in z["losses"]]
        states = json.loads(_text(z["rng_states"]))
        if len(states) == dist.world:
            rng.bit_generator.state = states[dist.rank]
        else:
            rng = np.random.default_rng([cfg.seed, dist.rank, start])
            say(f"note: {ckpt} was written by {len(states)} process(es), this run has {dist.world}: "
                "tasks are re-seeded (the run continues, but not bit-identically)")
        say(f"resuming from {ckpt} at meta-step {start} of {cfg.total_steps}")
    else:
        dist.broadcast(theta)
    resumed_from = start

    total = cfg.total_steps
    t0 = time.perf_counter()

    def save(step: int) -> None:
        states = dist.gather_text(json.dumps(rng.bit_generator.state))   # collective: every rank
        if dist.rank != 0 or ckpt is None:
            return
        arrays: dict[str, np.ndarray] = {
            "format": np.array(CHECKPOINT_FORMAT), "config": np.array(json.dumps(cfg.to_dict())),
            "step": np.array(step, np.int64), "rounds_done": np.array(rounds_done, np.int64),
            "adam_t": np.array(adam.t, np.int64), "world_size": np.array(dist.world, np.int64),
            "rng_states": np.array(json.dumps([json.loads(s) for s in states])),
            "losses": np.asarray(losses, np.float64)}
        for i, t in enumerate(theta):
            arrays[f"param_{i}"] = t.detach().cpu().numpy()
        for i, t in enumerate(lrs or []):
            arrays[f"lr_{i}"] = t.detach().cpu().numpy()
        for i, m in enumerate(masks):
            if m is not None:
                arrays[f"mask_{i}"] = m.cpu().numpy()
        for j, (m, v) in enumerate(zip(adam.m, adam.v)):
            arrays[f"adam_m_{j}"], arrays[f"adam_v_{j}"] = m.cpu().numpy(), v.cpu().numpy()
        save_checkpoint(ckpt, arrays)

    for step in range(start, total):
        if rounds_done < cfg.sparse_rounds and step >= cfg.steps + rounds_done * cfg.retrain:
            prune_rng = np.random.default_rng([cfg.seed, 1_000_003, rounds_done])
            masks = learn.prune_masks(theta, masks, cfg.prune_rate, cfg.prune_method, prune_rng)
            with torch.no_grad():
                for i, m in enumerate(masks):
                    if m is not None:
                        theta[i].mul_(m)
                        adam.m[i].mul_(m)
                        adam.v[i].mul_(m)
            rounds_done += 1
        y = source.targets(rng, cfg.meta_batch).to(device)
        loss, stats = tasks.objective(theta, lrs if lrs is not None else cfg.inner_lr, y,
                                      masks if cfg.sparse_rounds else None)
        grads = list(torch.autograd.grad(loss, leaves))
        mse = torch.tensor([stats["mse"]], dtype=torch.float64, device=device)
        grads = dist.average(grads + [mse.float()])
        mse_all = float(grads.pop())
        if not np.isfinite(mse_all):
            raise ConfigError(f"meta-training diverged at meta-step {step + 1} (the loss is not finite): "
                              "lower --inner-lr or --meta-lr")
        with torch.no_grad():
            if cfg.clip_grad > 0:
                norm = torch.sqrt(sum(g.square().sum() for g in grads))
                if float(norm) > cfg.clip_grad:
                    grads = [g * (cfg.clip_grad / float(norm)) for g in grads]
            adam.step(grads)
            for i, m in enumerate(masks):
                if m is not None:
                    theta[i].mul_(m)
        losses.append(mse_all)
        if progress is not None:
            progress(step + 1, total, learn.psnr(float(np.mean(losses[-20:]))))
        if ckpt is not None and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == total):
            save(step + 1)

    seconds = time.perf_counter() - t0
    out_masks = None
    if cfg.sparse_rounds:
        out_masks = [(np.ones(tuple(s), bool) if m is None else m.cpu().numpy().astype(bool))
                     for s, m in zip(shapes, masks)]
    tensors = [t.detach().cpu().numpy().astype(np.float32) for t in theta]
    if out_masks is not None:
        tensors = [np.where(m, t, np.float32(0)).astype(np.float32) for t, m in zip(tensors, out_masks)]
    return MetaResult(config=cfg, tensors=tensors,
                      lrs=None if lrs is None else [t.detach().cpu().numpy().astype(np.float32) for t in lrs],
                      masks=out_masks, losses=np.asarray(losses, np.float64), seconds=seconds, device=str(device),
                      rank=dist.rank, world_size=dist.world, resumed_from=resumed_from)


# ---------------------------------------------------------------------------------------------- priors


def _finite(v: float) -> Optional[float]:
    return float(v) if np.isfinite(v) else None


def prior_meta(result: MetaResult, *, data: Optional[dict] = None, command: Optional[str] = None) -> dict:
    """The prior's metadata: algorithm settings, data, steps, final meta-loss, command line."""
    cfg = result.config
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _RESUME_FREE}
    if cfg.arch == "nerv":
        meta = _base_meta(result, settings, data, command)
        for key in ("w0_first", "w0_hidden", "tile"):
            meta.pop(key)
        meta.update(clip={"frames": cfg.frames, "height": cfg.size[0], "width": cfg.size[1]}, preset=cfg.preset)
        return meta
    return _base_meta(result, settings, data, command)


def _base_meta(result: MetaResult, settings: dict, data: Optional[dict], command: Optional[str]) -> dict:
    cfg = result.config
    return {
        "trainer": "nfcodec.meta", "algorithm": cfg.algorithm(), "settings": settings,
        "inner_steps": cfg.inner_steps, "inner_lr": cfg.inner_lr, "meta_sgd": cfg.meta_sgd,
        "first_order": cfg.first_order, "context_keep": cfg.context_keep,
        "test_time_rescale": cfg.test_time_rescale, "bootstrap_steps": cfg.bootstrap_steps,
        "bootstrap_lambda": cfg.bootstrap_lambda, "sparse_rounds": cfg.sparse_rounds,
        "prune_rate": cfg.prune_rate, "prune_method": cfg.prune_method, "sparsity": round(result.sparsity, 6),
        "w0_first": cfg.w0_first, "w0_hidden": cfg.w0_hidden, "tile": list(cfg.size),
        "steps": result.steps, "meta_batch": cfg.meta_batch, "world_size": result.world_size,
        "effective_meta_batch": cfg.meta_batch * result.world_size,
        "final_meta_loss": _finite(result.final_mse), "final_meta_psnr": _finite(round(result.final_psnr, 4)),
        "seconds": round(result.seconds, 3), "device": result.device, "torch": torch.__version__,
        "data": data or {}, "command": command if command is not None else shlex.join(
            [Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else "",
    }


def build_prior(result: MetaResult, meta: dict) -> Any:
    """The ``nfcodec.priors.Prior`` of a meta-training result (the only call into the prior API)."""
    from ..bitstream.headers import SirenArch
    from ..priors import prior_from_float

    cfg = result.config
    if cfg.arch == "nerv":
        from .nerv import config_record

        return prior_from_float("nerv", config_record(cfg), 1, (cfg.frames, cfg.size[0], cfg.size[1]),
                                result.tensors, result.lrs, result.masks, meta)
    record = SirenArch(in_features=2, out_features=3, width=cfg.width, depth=cfg.depth,
                       w0_first=cfg.w0_first, w0_hidden=cfg.w0_hidden)
    return prior_from_float("siren", record, 0, (1, cfg.size[0], cfg.size[1]), result.tensors, result.lrs,
                            result.masks, meta)


def _write_prior(prior: Any, out_path: str | os.PathLike, overwrite: bool) -> None:
    from ..media import atomic_write
    from ..priors import pack_prior

    data = pack_prior(prior)
    atomic_write(out_path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite)


def train_prior(data_paths: Sequence[str | os.PathLike], out_path: Optional[str | os.PathLike], config: MetaConfig,
                progress: Optional[Progress] = None, *, resume: bool = False, command: Optional[str] = None,
                overwrite: bool = True, log: Optional[Callable[[str], None]] = None) -> Any:
    """Meta-train a prior on images/videos and write it to ``out_path`` (atomically; rank 0 only).

    Args:
        data_paths: image/video files, folders (recursive) or glob patterns (NeRV priors: videos).
        out_path: the prior file (``None``: do not write).
        config: a :class:`MetaConfig`.
        progress: ``progress(step, total, psnr)`` after each meta-step.
        resume: continue from ``config.checkpoint`` when it exists.
        command: the command line recorded in the prior's meta (default: ``sys.argv``).
        overwrite: replace an existing ``out_path`` (checked before training starts).

    Returns:
        The ``nfcodec.priors.Prior`` (on every rank).

    Raises:
        InputError: no images/videos, unreadable files or checkpoint.
        ConfigError: bad settings.
        OutputExistsError: ``out_path`` exists and ``overwrite`` is false.
    """
    from ..devices import resolve_device

    config.validate()
    resolve_device(config.device)                     # bad names fail before the data is read
    if out_path is not None:
        from ..media import check_output_path

        check_output_path(out_path, overwrite=overwrite, inputs=tuple(data_paths))
    if config.arch == "nerv":
        from .nerv import config_record, task_source

        config_record(config)                        # a network that does not fit fails before the data is read
        source: Any = task_source(data_paths, config)
    else:
        source = TaskSource(data_paths, config.size, augment=config.augment, min_scale=config.min_scale,
                            max_scale=config.max_scale, video_stride=config.video_stride,
                            max_video_frames=config.max_video_frames)
    result = meta_train(source, config, progress=progress, resume=resume, log=log)
    files = source.paths()
    data = {"paths": [str(p) for p in data_paths], **source.summary(),
            "file_list": files[:1000], "file_list_truncated": len(files) > 1000}
    prior = build_prior(result, prior_meta(result, data=data, command=command))
    if out_path is not None and result.rank == 0:
        _write_prior(prior, out_path, overwrite)
    return prior
