"""Meta-learning NeRV priors: the initialisation of one NeRV record for clips of ``F`` frames at ``H x W``.

The NeRV counterpart of :mod:`nfcodec.meta.learn` (SIREN tiles) and :mod:`nfcodec.meta.data`; the
trainer's loop, checkpoints, Adam, progress and torchrun code are :mod:`nfcodec.meta.train`'s, shared.

* **Tasks** (:class:`ClipSource`): clips of ``F`` consecutive frames (a random temporal stride in
  ``[1, video_stride]``), all cropped with one window of ``H/s x W/s`` pixels (``s`` uniform in
  ``[min_scale, max_scale]``, raised where the frame is smaller) and resized to ``H x W`` (Pillow: box
  filter when shrinking, bicubic when enlarging), with a horizontal flip and a time reversal
  (p = 1/2 each) under ``augment``.  Targets ``(n, F, 3, H, W)`` in ``[-1, 1]``.
* **Batched network** (:func:`forward`): ``B`` NeRVs with stacked parameters (canonical order of
  :func:`nfcodec.archs.nerv` ``param_shapes``) on the same ``F`` frame indices: the MLP as batched
  matmuls, every conv as one grouped convolution (``groups=B``), so every task steps at once; the
  same operations as :class:`nfcodec.models.nerv.Nerv` (float32).
* **Inner loop**: (Meta-)SGD on each task's whole-clip MSE, as for SIREN; MAML first or second order.
* **GradNCP**: (a) context pruning by the per-pixel norm of the *head's* gradient (the last layer:
  a ``k x k`` conv, so a pixel's gradient is ``(y - f) [patch(phi), 1]^T`` and its norm
  ``||y - f|| * sqrt(||patch(phi)||^2 + 1)``, from the forward pass already made): the inner loss is
  the MSE on the ``ceil(gamma * F*H*W)`` highest-scoring pixels of each task.  The network still
  renders whole frames, so unlike SIREN this saves no compute or memory, only changes the
  gradient; (b) the bootstrap correction and (c) test-time re-scaling are architecture-agnostic
  (:func:`nfcodec.meta.learn.bootstrap_distance`, :func:`~nfcodec.meta.learn.rescale_gradients`).
* **Meta-SparseINR**: :func:`nfcodec.meta.learn.prune_masks` on the NeRV tensors (weights: the even
  indices, conv kernels included; biases never), masked entries exact zeros through the inner loop.

:func:`adapt_prior` is the encoder's entry point (``nfc encode clip --prior P``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputError
from . import learn
from .data import collect_files, parse_tile_size

__all__ = ["parse_clip_size", "clip_text", "nerv_record", "nerv_init", "ClipSource", "encoding", "forward",
           "task_mse", "context_scores", "context_mask", "inner_step", "inner_loop", "bootstrap_target",
           "meta_objective", "adapt", "adapt_prior", "NervTasks", "MAX_CLIP_FRAMES"]

Tensors = list[torch.Tensor]
LRs = Union[float, Sequence[torch.Tensor]]

#: Frames of a NeRV prior's clip (tasks hold every frame in memory, graph included).
MAX_CLIP_FRAMES = 1024


# ---------------------------------------------------------------------------------------------- sizes and record


def parse_clip_size(spec: Union[str, Sequence[int]]) -> tuple[int, int, int]:
    """``"8x176x144"`` (FRAMESxWIDTHxHEIGHT, as ``--size`` and ``--resize`` write sizes) or
    ``(frames, height, width)`` -> ``(frames, height, width)``.

    Raises:
        ConfigError: malformed text, frames outside [1, 1024] or a side outside [2, 1024].
    """
    try:
        if isinstance(spec, str):
            parts = [int(v) for v in spec.lower().replace(" ", "").split("x")]
            if len(parts) != 3:
                raise ValueError
            frames, width, height = parts
        else:
            frames, height, width = (int(v) for v in spec)
    except (TypeError, ValueError):
        raise ConfigError(f"size {spec!r}: NeRV priors need FRAMESxWIDTHxHEIGHT, e.g. 8x176x144") from None
    if not 1 <= frames <= MAX_CLIP_FRAMES:
        raise ConfigError(f"size {spec!r}: frames must be in [1, {MAX_CLIP_FRAMES}]")
    h, w = parse_tile_size((height, width))
    return frames, h, w


def clip_text(frames: int, height: int, width: int) -> str:
    """``8x176x144`` (FRAMESxWIDTHxHEIGHT)."""
    return f"{frames}x{width}x{height}"


def nerv_record(frames: int, height: int, width: int, preset: str = "default", **knobs: Any) -> Any:
    """The NeRV record ``nfc encode --preset PRESET`` gives a clip of ``frames`` frames at ``height x width``:
    the video preset's network sized for the clip (:func:`nfcodec.ratecontrol.clip_sized`), or, when
    any of ``c1, c2, min_channels, mlp_hidden`` is given (not None), the preset with those knobs, as
    ``nfc encode`` does with size knobs."""
    from ..archs import ARCHS
    from ..config import get_preset
    from ..encoder import stream_header
    from ..ratecontrol import clip_sized

    clip = np.zeros((frames, height, width, 3), np.uint8)
    given = {k: v for k, v in knobs.items() if v is not None}
    cfg = get_preset(preset, video=True)
    if given:
        cfg = cfg.replace(**given)
    else:
        cfg, _ = clip_sized(clip, 1, Fraction(0), cfg, preset)
    header = stream_header(clip, 1, Fraction(0), cfg.replace(layout="single", representation="dense"))
    arch = ARCHS.by_name("nerv")
    record = arch.make_record(cfg.model, header)
    arch.check(record, header)
    return record


def nerv_shapes(record: Any) -> list[tuple[int, ...]]:
    from ..archs import ARCHS

    return [tuple(s) for s in ARCHS.by_name("nerv").param_shapes(record)]


def nerv_init(record: Any, generator: Optional[torch.Generator] = None) -> Tensors:
    """One network's tensors drawn as :meth:`nfcodec.models.nerv.Nerv.init_weights_` draws them
    (PyTorch's default law, same generator order), without building the module."""
    out: Tensors = []
    shapes = nerv_shapes(record)
    for i in range(0, len(shapes), 2):
        fan = math.prod(shapes[i][1:])
        bound = 1.0 / math.sqrt(fan)
        w = torch.empty(shapes[i]).uniform_(-bound, bound, generator=generator)
        b = torch.empty(shapes[i + 1]).uniform_(-bound, bound, generator=generator)
        out += [w, b]
    return out


# ---------------------------------------------------------------------------------------------- tasks


@dataclass
class _Video:
    path: Path
    frames: np.ndarray      # (n, H, W, 3) uint8


class ClipSource:
    """Tasks (random augmented clips) drawn from videos; see the module docstring.

    Args:
        paths: video files, folders (recursive) or glob patterns (images are refused).
        frames, size: the clip: ``frames`` frames of ``size`` = ``(height, width)``.
        max_stride: temporal strides are drawn from ``[1, max_stride]`` (1 without ``augment``).
        max_frames: frames read per video (the first ones).

    Raises:
        InputError: no videos, an image among the data, an unreadable video.
        ConfigError: bad sizes or scales.
    """

    def __init__(self, paths: Iterable[Union[str, os.PathLike]], frames: int, size: Sequence[int], *,
                 augment: bool = True, min_scale: float = 0.5, max_scale: float = 1.0, max_stride: int = 4,
                 max_frames: int = 256) -> None:
        self.frames, self.size = int(frames), parse_tile_size(tuple(size))
        if not 1 <= self.frames <= MAX_CLIP_FRAMES:
            raise ConfigError(f"frames={frames}: must be in [1, {MAX_CLIP_FRAMES}]")
        if not (0 < min_scale <= max_scale):
            raise ConfigError(f"scales: need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        if max_stride < 1 or max_frames < 1:
            raise ConfigError("video_stride and max_video_frames must be >= 1")
        self.augment, self.min_scale, self.max_scale = bool(augment), float(min_scale), float(max_scale)
        self.max_stride = int(max_stride)
        self.sources: list[_Video] = []
        from ..video_io import read_video

        for path, kind in collect_files(paths):
            if kind == "image":
                raise InputError(f"{path} is an image: NeRV priors learn from videos (clips of {self.frames} frames)")
            video = read_video(path).frames
            self.sources.append(_Video(path, np.ascontiguousarray(video[:max_frames])))

    def summary(self) -> dict:
        return {"files": len(self.sources), "images": 0, "videos": len(self.sources),
                "video_frames": int(sum(len(s.frames) for s in self.sources)),
                "pixels": int(sum(s.frames.shape[0] * s.frames.shape[1] * s.frames.shape[2] for s in self.sources))}

    def paths(self) -> list[str]:
        return [str(s.path) for s in self.sources]

    def clip(self, rng: np.random.Generator) -> np.ndarray:
        """One ``(F, H, W, 3)`` uint8 task."""
        th, tw = self.size
        f = self.frames
        src = self.sources[int(rng.integers(len(self.sources)))]
        n = len(src.frames)
        stride = int(rng.integers(1, self.max_stride + 1)) if self.augment else 1
        if f > 1:
            stride = max(1, min(stride, (n - 1) // (f - 1)))
        span = (f - 1) * stride + 1
        t0 = int(rng.integers(max(1, n - span + 1)))
        idx = [min(n - 1, t0 + i * stride) for i in range(f)]
        h, w = src.frames.shape[1:3]
        need = max(th / h, tw / w)
        lo, hi = max(self.min_scale, need), max(self.max_scale, need)
        s = float(rng.uniform(lo, hi))
        rh, rw = min(h, max(1, round(th / s))), min(w, max(1, round(tw / s)))
        r0, c0 = int(rng.integers(h - rh + 1)), int(rng.integers(w - rw + 1))
        clip = src.frames[idx, r0:r0 + rh, c0:c0 + rw]
        if (rh, rw) != (th, tw):
            from PIL import Image

            how = Image.Resampling.BOX if rh * rw > th * tw else Image.Resampling.BICUBIC
            clip = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(fr)).resize((tw, th), how), np.uint8)
                             for fr in clip])
        if self.augment:
            flip, reverse = bool(rng.integers(2)), bool(rng.integers(2))
            if flip:
                clip = clip[:, :, ::-1]
            if reverse:
                clip = clip[::-1]
        return np.ascontiguousarray(clip)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``(n, F, H, W, 3)`` uint8 tasks."""
        return np.stack([self.clip(rng) for _ in range(n)])

    def targets(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        """``(n, F, 3, H, W)`` float32 targets in ``[-1, 1]``."""
        return clip_targets(self.sample(rng, n))


def clip_targets(clips: np.ndarray) -> torch.Tensor:
    """``(n, F, H, W, 3)`` (or one ``(F, H, W, 3)`` clip) uint8 -> ``(n, F, 3, H, W)`` float32 in ``[-1, 1]``."""
    a = np.ascontiguousarray(clips, dtype=np.uint8)
    if a.ndim == 4:
        a = a[None]
    return torch.from_numpy(a).permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------- the batched network


def encoding(record: Any, frames: int) -> torch.Tensor:
    """``(F, 2l)`` positional encodings of frames ``0 .. F-1`` of an ``F``-frame clip (as the encoder's
    :class:`~nfcodec.samplers.FrameSampler` feeds :class:`~nfcodec.models.nerv.Nerv`)."""
    from ..models.nerv import positional_encoding

    t = torch.arange(frames, dtype=torch.float64) / frames
    return positional_encoding(t, record.pe_b, record.pe_l)


def forward(params: Sequence[torch.Tensor], record: Any, enc: torch.Tensor, height: int, width: int,
            features: bool = False) -> Any:
    """``(B, F, 3, height, width)`` outputs of ``B`` NeRVs (stacked parameters) at the frames of
    ``enc`` ``(F, 2l)``; with ``features`` also the head's input ``(F, B*c, Hp, Wp)``."""
    b, f = params[0].shape[0], enc.shape[0]
    r = record
    h = F.gelu(torch.baddbmm(params[1].unsqueeze(1), enc.unsqueeze(0).expand(b, -1, -1), params[0].transpose(1, 2)))
    z = F.gelu(torch.baddbmm(params[3].unsqueeze(1), h, params[2].transpose(1, 2)))       # (B, F, c1*h0*w0)
    x = z.reshape(b, f, r.c1, r.h0, r.w0).transpose(0, 1).reshape(f, b * r.c1, r.h0, r.w0)
    cin = r.c1
    for i, (factor, c) in enumerate(r.blocks):
        w, bias = params[4 + 2 * i], params[5 + 2 * i]
        x = F.conv2d(x, w.reshape(b * w.shape[1], cin, r.kernel, r.kernel), bias.reshape(-1),
                     padding=r.kernel // 2, groups=b)
        hh, ww = x.shape[-2:]
        x = F.gelu(F.pixel_shuffle(x.reshape(f * b, c * factor * factor, hh, ww), factor))
        x = x.reshape(f, b * c, hh * factor, ww * factor)
        cin = c
    hw, hb = params[-2], params[-1]
    out = F.conv2d(x, hw.reshape(b * 3, cin, r.head_kernel, r.head_kernel), hb.reshape(-1),
                   padding=r.head_kernel // 2, groups=b)
    out = out.reshape(f, b, 3, *out.shape[-2:]).transpose(0, 1)[..., :height, :width]
    return (out, x) if features else out


def task_mse(params: Sequence[torch.Tensor], record: Any, enc: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B,)`` MSE of each task's clip (``y``: ``(B, F, 3, H, W)``)."""
    out = forward(params, record, enc, y.shape[-2], y.shape[-1])
    return (out - y).square().mean(dim=(1, 2, 3, 4))


@torch.no_grad()
def context_scores(out: torch.Tensor, phi: torch.Tensor, y: torch.Tensor, head_kernel: int) -> torch.Tensor:
    """GradNCP's score of every pixel ``(B, F, H, W)``: the norm of its per-pixel gradient of the
    head (a ``k x k`` conv): ``||y - f|| * sqrt(||patch_k(phi)||^2 + 1)`` (the constant 2 dropped)."""
    b, f, _, height, width = out.shape
    energy = phi.reshape(f, b, -1, *phi.shape[-2:]).square().sum(2).reshape(f * b, 1, *phi.shape[-2:])
    ones = torch.ones(1, 1, head_kernel, head_kernel, dtype=phi.dtype, device=phi.device)
    patch = F.conv2d(energy, ones, padding=head_kernel // 2)[..., :height, :width]
    patch = patch.reshape(f, b, height, width).transpose(0, 1)
    return (y - out).norm(dim=2) * torch.sqrt(patch.clamp_min(0) + 1.0)


def context_mask(score: torch.Tensor, keep: float) -> tuple[torch.Tensor, int]:
    """``(B, F, H, W)`` float mask of each task's ``n = ceil(keep * F*H*W)`` best pixels, and ``n``."""
    flat = score.reshape(score.shape[0], -1)
    n = learn.context_count(flat.shape[1], keep)
    idx = torch.topk(flat, n, dim=1, sorted=True).indices
    mask = torch.zeros_like(flat).scatter_(1, idx, 1.0)
    return mask.reshape(score.shape), n


def inner_step(params: Sequence[torch.Tensor], lrs: LRs, record: Any, enc: torch.Tensor, y: torch.Tensor, *,
               create_graph: bool = False, keep: float = 1.0,
               masks: Optional[Sequence[Optional[torch.Tensor]]] = None, rescale: bool = False
               ) -> tuple[Tensors, torch.Tensor]:
    """One (Meta-)SGD step of every task (see :func:`nfcodec.meta.learn.inner_step`; here one
    forward pass serves the context scores, the pruned loss and, with ``rescale``, the full one)."""
    out, phi = forward(params, record, enc, y.shape[-2], y.shape[-1], features=True)
    err = (out - y).square()
    full = err.mean(dim=(1, 2, 3, 4))
    if keep < 1.0:
        mask, n = context_mask(context_scores(out.detach(), phi.detach(), y, record.head_kernel), keep)
        loss = (err.sum(2) * mask).reshape(mask.shape[0], -1).sum(1) / (n * err.shape[2])
    else:
        loss = full
    both = rescale and keep < 1.0
    grads = torch.autograd.grad(loss.sum(), list(params), create_graph=create_graph, retain_graph=both or None)
    if both:
        full_grads = torch.autograd.grad(full.sum(), list(params), create_graph=create_graph)
        grads = learn.rescale_gradients(full_grads, grads)
        loss = full
    if masks is not None:
        grads = [g if m is None else g * m for g, m in zip(grads, masks)]
    new = [p - learn._lr(lrs, i) * g for i, (p, g) in enumerate(zip(params, grads))]
    return new, loss.detach()


def inner_loop(params: Sequence[torch.Tensor], lrs: LRs, record: Any, enc: torch.Tensor, y: torch.Tensor,
               steps: int, *, create_graph: bool = False, keep: float = 1.0,
               masks: Optional[Sequence[Optional[torch.Tensor]]] = None, rescale: bool = False,
               detach: bool = False) -> tuple[Tensors, list[torch.Tensor]]:
    """``steps`` inner steps; ``detach`` cuts the graph after each (test time, bootstrap targets)."""
    losses = []
    params = list(params)
    for _ in range(steps):
        if detach:
            params = [p.detach().requires_grad_(True) for p in params]
        params, loss = inner_step(params, lrs, record, enc, y, create_graph=create_graph, keep=keep, masks=masks,
                                  rescale=rescale)
        losses.append(loss)
    if detach:
        params = [p.detach() for p in params]
    return params, losses


def bootstrap_target(params: Sequence[torch.Tensor], lrs: LRs, record: Any, enc: torch.Tensor, y: torch.Tensor,
                     steps: int, *, lr_scale: float = 5.0,
                     masks: Optional[Sequence[Optional[torch.Tensor]]] = None) -> Tensors:
    """GradNCP's bootstrapped target: ``steps`` full-context steps from a detached ``theta_K``."""
    scaled: LRs = lrs * lr_scale if isinstance(lrs, (int, float)) else [lr.detach() * lr_scale for lr in lrs]
    with torch.enable_grad():
        target, _ = inner_loop([p.detach() for p in params], scaled, record, enc, y, steps, masks=masks, detach=True)
    return target


def meta_objective(theta: Sequence[torch.Tensor], lrs: LRs, record: Any, enc: torch.Tensor, y: torch.Tensor, *,
                   steps: int, first_order: bool = False, keep: float = 1.0, bootstrap_steps: int = 0,
                   bootstrap_lambda: float = 100.0, bootstrap_lr_scale: float = 5.0,
                   masks: Optional[Sequence[Optional[torch.Tensor]]] = None) -> tuple[torch.Tensor, dict]:
    """The outer loss of one meta-batch of clips ``y`` ``(B, F, 3, H, W)`` (as
    :func:`nfcodec.meta.learn.meta_objective`)."""
    b = y.shape[0]
    theta0 = learn.expand(learn._masked(theta, masks), b)
    theta_k, inner = inner_loop(theta0, lrs, record, enc, y, steps, create_graph=not first_order, keep=keep,
                                masks=masks)
    mse = task_mse(theta_k, record, enc, y)
    loss = mse.mean()
    stats: dict = {"mse": float(mse.detach().mean()), "mse_tasks": mse.detach()}
    if inner:
        stats["inner_first"] = float(inner[0].mean())
    if bootstrap_steps > 0:
        target = bootstrap_target(theta_k, lrs, record, enc, y, bootstrap_steps, lr_scale=bootstrap_lr_scale,
                                  masks=masks)
        dist = learn.bootstrap_distance(theta_k, target)
        loss = loss + bootstrap_lambda * dist.mean()
        stats["distance"] = float(dist.detach().mean())
        with torch.no_grad():
            stats["boot_mse"] = float(task_mse(target, record, enc, y).mean())
    stats["loss"] = float(loss.detach())
    return loss, stats


class NervTasks:
    """What :mod:`nfcodec.meta.train`'s loop needs of NeRV: shapes, the initial draw, the outer loss."""

    def __init__(self, cfg: Any, device: torch.device) -> None:
        self.cfg = cfg
        self.record = config_record(cfg)
        self.shapes = nerv_shapes(self.record)
        self.enc = encoding(self.record, cfg.frames).to(device)

    def init(self, gen: torch.Generator) -> Tensors:
        return nerv_init(self.record, gen)

    def objective(self, theta: Sequence[torch.Tensor], lrs: LRs, y: torch.Tensor,
                  masks: Optional[Sequence[Optional[torch.Tensor]]]) -> tuple[torch.Tensor, dict]:
        c = self.cfg
        return meta_objective(theta, lrs, self.record, self.enc, y, steps=c.inner_steps, first_order=c.first_order,
                              keep=c.context_keep, bootstrap_steps=c.bootstrap_steps,
                              bootstrap_lambda=c.bootstrap_lambda, bootstrap_lr_scale=c.bootstrap_lr_scale,
                              masks=masks)


def config_record(cfg: Any) -> Any:
    """The record of a NeRV :class:`~nfcodec.meta.train.MetaConfig`."""
    return nerv_record(cfg.frames, cfg.size[0], cfg.size[1], cfg.preset, c1=cfg.c1, c2=cfg.c2,
                       min_channels=cfg.min_channels, mlp_hidden=cfg.mlp_hidden)


def task_source(paths: Sequence[Union[str, os.PathLike]], cfg: Any) -> ClipSource:
    """The :class:`ClipSource` of a NeRV :class:`~nfcodec.meta.train.MetaConfig` (at most
    ``max_video_frames * video_stride`` frames of each video, the first ones)."""
    return ClipSource(paths, cfg.frames, cfg.size, augment=cfg.augment, min_scale=cfg.min_scale,
                      max_scale=cfg.max_scale, max_stride=cfg.video_stride,
                      max_frames=cfg.max_video_frames * cfg.video_stride)


# ---------------------------------------------------------------------------------------------- the encoder's entry


def adapt(init_tensors: Sequence[Any], lrs: Union[float, Sequence[Any], None], record: Any, y: torch.Tensor,
          steps: int, *, masks: Optional[Sequence[Any]] = None, context_keep: float = 1.0, rescale: bool = False,
          inner_lr: float = 1e-2) -> Tensors:
    """``steps`` Meta-SGD inner steps of the NeRV ``record`` from ``init_tensors`` on clips ``y``
    ``(B, F, 3, H, W)`` in ``[-1, 1]``, exactly as the prior was meta-trained (no graph kept).

    ``lrs``: per-parameter step sizes, a scalar, or None for ``inner_lr``; ``masks``: a sparse
    prior's keep masks (pruned entries stay 0); ``context_keep`` / ``rescale``: GradNCP's gamma and
    Eq. 4 (full-clip steps with the gradient re-scaled to the pruned-context norm).

    Returns:
        The adapted ``(B, ...)`` stacked parameters (detached).
    """
    device = y.device
    enc = encoding(record, y.shape[1]).to(device)
    theta, m, lr = learn.adapt_state(init_tensors, masks, lrs, inner_lr, device)
    params = learn.expand(theta, y.shape[0])
    with torch.enable_grad():
        params, _ = inner_loop(params, lr, record, enc, y, steps, keep=context_keep, masks=m, rescale=rescale,
                               detach=True)
    return params


def adapt_prior(prior: Any, y: torch.Tensor, steps: Optional[int] = None, *, rescale: Optional[bool] = None) -> Tensors:
    """:func:`adapt` with a NeRV prior's values, step sizes, masks, ``inner_steps`` (default
    ``steps``), ``context_keep`` and ``test_time_rescale``."""
    meta = dict(prior.meta)
    tensors = [prior.values(i) for i in range(len(prior.tensors))]
    if rescale is None:
        rescale = bool(meta.get("test_time_rescale", False))
    return adapt(tensors, prior.lrs, prior.record, y, int(meta.get("inner_steps", 0)) if steps is None else steps,
                 masks=prior.masks, context_keep=float(meta.get("context_keep", 1.0)), rescale=rescale,
                 inner_lr=float(meta.get("inner_lr", 1e-2)))
