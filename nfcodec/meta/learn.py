"""Meta-learning algorithms for SIREN priors, on stacked per-task parameters.

Every function works on a *batch* of SIRENs whose parameters are stacked along a leading
dimension (``nfcodec.models.tiled``: ``W_0, b_0, ..., W_head, b_head``, weights ``(out, in)``);
one network per task (training) or per tile (encoding).  The shared initialisation ``theta_0``
(one network, unbatched tensors) is expanded to ``B`` copies for the inner loop, so the
meta-gradient flows back through the expansion (summed over tasks).

Algorithms (docs/meta-learning.md has the equations):

* **MAML / Learnit**: ``K`` inner SGD steps ``theta_{k+1} = theta_k - alpha * grad L(theta_k)`` on each
  task's MSE, outer loss ``L(theta_K)`` on the full tile; second order (``create_graph=True``) or
  first order (the inner gradients are constants).
* **Meta-SGD**: ``alpha`` is a learned tensor per parameter (same shape), trained by the outer loop.
* **GradNCP** (Tack et al. 2023): (a) online context pruning: each inner step keeps, per task, the
  ``ceil(gamma * P)`` coordinates with the largest last-layer gradient norm (Eq. 2,
  ``||y - f(x)|| * ||[phi(x), 1]||``, from one forward pass without graph); (b) bootstrap
  correction: ``L`` more full-context steps from ``theta_K`` (no graph, step sizes times
  ``bootstrap_lr_scale``) give a target ``theta_boot``; the outer loss adds
  ``lambda * mean_b ||theta_K^b - sg(theta_boot^b)||_2`` (Eq. 3); (c) test-time gradient
  re-scaling (Eq. 4): :func:`rescale_gradients`, used by :func:`adapt` with ``rescale=True``.
* **Meta-SparseINR** (Lee et al. 2021): :func:`prune_masks` removes a fraction of the surviving
  weight-matrix entries by global magnitude (or at random, the paper's baseline); the masked
  entries are exact zeros and stay zero through the inner loop (gradients masked).

:func:`adapt` is the encoder's entry point: the same inner steps, without graph, on a batch of tiles.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from ..models.tiled import forward

__all__ = ["psnr", "expand", "features", "task_mse", "context_count", "context_scores", "select_context",
           "gather_context", "inner_step", "inner_loop", "bootstrap_target", "bootstrap_distance",
           "meta_objective", "prune_masks", "rescale_gradients", "adapt", "adapt_state", "adapt_prior", "weight_indices"]

Tensors = list[torch.Tensor]
LRs = Union[float, Sequence[torch.Tensor]]


def psnr(mse: Any) -> Any:
    """PSNR (dB) of an MSE measured on ``[-1, 1]`` targets (peak-to-peak 2): ``10 log10(4 / mse)``."""
    if isinstance(mse, torch.Tensor):
        return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))
    return 10 * math.log10(4.0 / max(float(mse), 1e-12))


def weight_indices(n_tensors: int) -> list[int]:
    """Indices of the weight matrices in the canonical order (biases are the odd ones)."""
    return list(range(0, n_tensors, 2))


def expand(tensors: Sequence[torch.Tensor], n: int) -> Tensors:
    """``n`` copies of one network's tensors as stacked (broadcast, not copied) parameters."""
    return [t.unsqueeze(0).expand(n, *t.shape) for t in tensors]


def _masked(tensors: Sequence[torch.Tensor], masks: Optional[Sequence[Optional[torch.Tensor]]]) -> Tensors:
    if masks is None:
        return list(tensors)
    return [t if m is None else t * m for t, m in zip(tensors, masks)]


def features(params: Sequence[torch.Tensor], x: torch.Tensor, w0_first: float, w0_hidden: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(phi, out)``: penultimate features ``(n, P, width)`` and outputs ``(n, P, out)``; the same
    operations as :func:`nfcodec.models.tiled.forward` (``out`` is bit-identical to it)."""
    h = x
    last = len(params) - 2
    for i in range(0, last, 2):
        h = torch.baddbmm(params[i + 1].unsqueeze(1), h.expand(params[i].shape[0], -1, -1), params[i].transpose(1, 2))
        h = torch.sin((w0_first if i == 0 else w0_hidden) * h)
    out = torch.baddbmm(params[last + 1].unsqueeze(1), h.expand(params[last].shape[0], -1, -1),
                        params[last].transpose(1, 2))
    return h, out


def task_mse(params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor, w0_first: float, w0_hidden: float,
             inside: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(B,)`` MSE of each task (mean over its pixels and channels; ``inside`` ``(B, P)`` bool
    restricts the mean to real pixels of padded edge tiles)."""
    err = (forward(params, x, w0_first, w0_hidden) - y).square()
    if inside is None:
        return err.mean(dim=(1, 2))
    w = inside.to(err.dtype)
    return (err.sum(-1) * w).sum(1) / (w.sum(1).clamp_min(1) * err.shape[-1])


def context_count(points: int, keep: float) -> int:
    """Coordinates kept per task by context pruning: ``ceil(keep * points)`` (at least 1)."""
    return max(1, min(points, math.ceil(round(keep * points, 9))))


@torch.no_grad()
def context_scores(params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor, w0_first: float,
                   w0_hidden: float, inside: Optional[torch.Tensor] = None) -> torch.Tensor:
    """GradNCP's score (Eq. 2) of every coordinate, ``(B, P)``: the Frobenius norm of the
    per-sample last-layer gradient ``(y - f(x)) [phi(x), 1]^T``, i.e. ``||y - f(x)|| * ||[phi(x), 1]||``
    (one forward pass, no backward; positive factors that do not change the ranking are dropped).
    Pixels outside (``inside`` False) score -1."""
    phi, out = features(params, x, w0_first, w0_hidden)
    score = (y - out).norm(dim=-1) * torch.sqrt(phi.square().sum(-1) + 1.0)
    if inside is not None:
        score = torch.where(inside, score, torch.full_like(score, -1.0))
    return score


def select_context(params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor, keep: float,
                   w0_first: float, w0_hidden: float, inside: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(B, n)`` indices of each task's ``n = ceil(keep * P)`` highest-scoring coordinates."""
    score = context_scores(params, x, y, w0_first, w0_hidden, inside)
    return torch.topk(score, context_count(score.shape[1], keep), dim=1, sorted=True).indices


def gather_context(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, inside: Optional[torch.Tensor] = None
                   ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """The selected coordinates ``(B, n, in)``, targets ``(B, n, out)`` (and inside flags)."""
    b = idx.shape[0]
    xs = x.expand(b, -1, -1).gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    ys = y.gather(1, idx.unsqueeze(-1).expand(-1, -1, y.shape[-1]))
    return xs, ys, None if inside is None else inside.gather(1, idx)


def _lr(lr: Any, i: int) -> Any:
    if isinstance(lr, (int, float)):
        return lr
    return lr[i]


def rescale_gradients(full: Sequence[torch.Tensor], pruned: Sequence[torch.Tensor]) -> Tensors:
    """GradNCP's test-time re-scaling (Eq. 4): each task's full-context gradient times
    ``||g_pruned|| / ||g_full||`` (norms over all of the task's parameters), so that steps taken on the
    full tile have the gradient magnitude the pruned-context inner loop was meta-trained with."""
    def norm(gs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.sqrt(sum(g.reshape(g.shape[0], -1).square().sum(1) for g in gs))

    scale = (norm(pruned) / (norm(full) + 1e-16)).detach()
    return [g * scale.view(-1, *([1] * (g.dim() - 1))) for g in full]


def inner_step(params: Sequence[torch.Tensor], lrs: LRs, x: torch.Tensor, y: torch.Tensor, *, w0_first: float,
               w0_hidden: float, create_graph: bool = False, keep: float = 1.0,
               masks: Optional[Sequence[Optional[torch.Tensor]]] = None, inside: Optional[torch.Tensor] = None,
               rescale: bool = False) -> tuple[Tensors, torch.Tensor]:
    """One (Meta-)SGD step of every task: ``theta - alpha * g``; returns the new parameters and the
    ``(B,)`` losses the step was taken on (detached).

    ``keep < 1``: ``g`` is the gradient on the pruned context (GradNCP, Eq. 2); with ``rescale`` the
    step uses the full-context gradient re-scaled to the pruned one's norm (Eq. 4) instead.
    ``masks`` (per tensor, ``None`` = dense) zero the gradient at pruned weights.
    """
    if keep < 1.0:
        idx = select_context(params, x, y, keep, w0_first, w0_hidden, inside)
        xs, ys, ins = gather_context(x, y, idx, inside)
    else:
        xs, ys, ins = x, y, inside
    loss = task_mse(params, xs, ys, w0_first, w0_hidden, ins)
    grads = torch.autograd.grad(loss.sum(), list(params), create_graph=create_graph)
    if rescale and keep < 1.0:
        full_loss = task_mse(params, x, y, w0_first, w0_hidden, inside)
        full = torch.autograd.grad(full_loss.sum(), list(params), create_graph=create_graph)
        grads = rescale_gradients(full, grads)
        loss = full_loss
    if masks is not None:
        grads = [g if m is None else g * m for g, m in zip(grads, masks)]
    new = [p - _lr(lrs, i) * g for i, (p, g) in enumerate(zip(params, grads))]
    return new, loss.detach()


def inner_loop(params: Sequence[torch.Tensor], lrs: LRs, x: torch.Tensor, y: torch.Tensor, steps: int, *,
               w0_first: float, w0_hidden: float, create_graph: bool = False, keep: float = 1.0,
               masks: Optional[Sequence[Optional[torch.Tensor]]] = None, inside: Optional[torch.Tensor] = None,
               rescale: bool = False, detach: bool = False) -> tuple[Tensors, list[torch.Tensor]]:
    """``steps`` inner steps (:func:`inner_step`); ``detach`` cuts the graph after each step (no
    meta-gradient: test time and bootstrap targets).  Returns the final parameters and per-step losses."""
    losses = []
    params = list(params)
    for _ in range(steps):
        if detach:
            params = [p.detach().requires_grad_(True) for p in params]
        params, loss = inner_step(params, lrs, x, y, w0_first=w0_first, w0_hidden=w0_hidden,
                                  create_graph=create_graph, keep=keep, masks=masks, inside=inside, rescale=rescale)
        losses.append(loss)
    if detach:
        params = [p.detach() for p in params]
    return params, losses


def bootstrap_target(params: Sequence[torch.Tensor], lrs: LRs, x: torch.Tensor, y: torch.Tensor, steps: int, *,
                     w0_first: float, w0_hidden: float, lr_scale: float = 5.0,
                     masks: Optional[Sequence[Optional[torch.Tensor]]] = None) -> Tensors:
    """GradNCP's bootstrapped target: ``steps`` full-context SGD steps from (a detached copy of)
    ``theta_K`` with step sizes ``lr_scale * alpha``; the meta-gradient never sees this process."""
    scaled: LRs = lrs * lr_scale if isinstance(lrs, (int, float)) else [lr.detach() * lr_scale for lr in lrs]
    with torch.enable_grad():
        target, _ = inner_loop([p.detach() for p in params], scaled, x, y, steps, w0_first=w0_first,
                               w0_hidden=w0_hidden, masks=masks, detach=True)
    return target


def bootstrap_distance(params: Sequence[torch.Tensor], target: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(B,)`` L2 distance ``||theta_K^b - theta_boot^b||_2`` over all parameters of each task."""
    sq = sum((p - t.detach()).reshape(p.shape[0], -1).square().sum(1) for p, t in zip(params, target))
    return torch.sqrt(sq + 1e-20)


def meta_objective(theta: Sequence[torch.Tensor], lrs: LRs, x: torch.Tensor, y: torch.Tensor, *, steps: int,
                   w0_first: float, w0_hidden: float, first_order: bool = False, keep: float = 1.0,
                   bootstrap_steps: int = 0, bootstrap_lambda: float = 100.0, bootstrap_lr_scale: float = 5.0,
                   masks: Optional[Sequence[Optional[torch.Tensor]]] = None) -> tuple[torch.Tensor, dict]:
    """The outer loss of one meta-batch (``y``: ``(B, P, out)``) from the shared init ``theta``:
    ``mean_b MSE_b(theta_K) [+ lambda * mean_b ||theta_K^b - sg(theta_boot^b)||]`` and statistics
    (``mse``: mean K-step full-context MSE, ``inner``: first/last inner losses, ``distance``)."""
    b = y.shape[0]
    theta0 = expand(_masked(theta, masks), b)
    theta_k, inner = inner_loop(theta0, lrs, x, y, steps, w0_first=w0_first, w0_hidden=w0_hidden,
                                create_graph=not first_order, keep=keep, masks=masks)
    mse = task_mse(theta_k, x, y, w0_first, w0_hidden)
    loss = mse.mean()
    stats: dict = {"mse": float(mse.detach().mean()), "mse_tasks": mse.detach()}
    if inner:
        stats["inner_first"] = float(inner[0].mean())
    if bootstrap_steps > 0:
        target = bootstrap_target(theta_k, lrs, x, y, bootstrap_steps, w0_first=w0_first, w0_hidden=w0_hidden,
                                  lr_scale=bootstrap_lr_scale, masks=masks)
        dist = bootstrap_distance(theta_k, target)
        loss = loss + bootstrap_lambda * dist.mean()
        stats["distance"] = float(dist.detach().mean())
        with torch.no_grad():
            stats["boot_mse"] = float(task_mse(target, x, y, w0_first, w0_hidden).mean())
    stats["loss"] = float(loss.detach())
    return loss, stats


def prune_masks(tensors: Sequence[torch.Tensor], masks: Optional[Sequence[Optional[torch.Tensor]]], rate: float,
                method: str = "magnitude", rng: Optional[np.random.Generator] = None) -> list[Optional[torch.Tensor]]:
    """One Meta-SparseINR pruning round: remove ``round(rate * alive)`` of the surviving weight-matrix
    entries (biases are never pruned), by global magnitude of the meta-learned weights (ties: the
    earlier entry in canonical order goes first) or, ``method="random"``, uniformly at random (``rng``).

    Returns the new masks (bool tensors for the weight matrices, ``None`` for biases)."""
    if method not in ("magnitude", "random"):
        raise ValueError(f"prune method {method!r}: magnitude or random")
    idx = weight_indices(len(tensors))
    old = [torch.ones_like(tensors[i], dtype=torch.bool) if masks is None or masks[i] is None else masks[i].bool()
           for i in idx]
    alive = [m.detach().cpu().numpy().reshape(-1) for m in old]
    if method == "magnitude":
        score = [np.abs(tensors[i].detach().cpu().double().numpy().reshape(-1)) for i in idx]
    else:
        if rng is None:
            raise ValueError("random pruning needs an rng")
        score = [rng.random(a.size) for a in alive]
    flat_alive = np.concatenate(alive)
    flat_score = np.concatenate(score)
    live = np.flatnonzero(flat_alive)
    k = int(round(rate * live.size))
    order = live[np.argsort(flat_score[live], kind="stable")][:k]
    flat_alive = flat_alive.copy()
    flat_alive[order] = False
    out: list[Optional[torch.Tensor]] = [None] * len(tensors)
    pos = 0
    for j, i in enumerate(idx):
        n = alive[j].size
        out[i] = torch.from_numpy(flat_alive[pos:pos + n].reshape(tuple(tensors[i].shape))).to(tensors[i].device)
        pos += n
    return out


def _as_tensor(t: Any, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(t, dtype=np.float32) if not isinstance(t, torch.Tensor) else t,
                           dtype=torch.float32, device=device)


def adapt(init_tensors: Sequence[Any], lrs: Union[float, Sequence[Any], None], x: torch.Tensor, y: torch.Tensor,
          steps: int, *, w0_first: float = 30.0, w0_hidden: float = 30.0, masks: Optional[Sequence[Any]] = None,
          context_keep: float = 1.0, rescale: bool = False, inside: Optional[torch.Tensor] = None,
          inner_lr: float = 1e-2) -> Tensors:
    """The encoder's first steps from a prior: ``steps`` Meta-SGD inner steps on a batch of tiles,
    exactly as the prior was meta-trained (no graph kept).

    Args:
        init_tensors: one network's tensors (canonical order; numpy or torch), e.g. ``prior.values(i)``.
        lrs: per-parameter step sizes (same shapes), a scalar, or ``None`` for ``inner_lr``.
        x: coordinates ``(P, in)`` shared by all tiles (``grid_coords``) or ``(B, P, in)``.
        y: targets ``(B, P, out)`` in ``[-1, 1]``; ``B`` tiles are adapted at once on ``y``'s device.
        steps: inner steps (the prior's ``K``; more continue the same SGD).
        masks: per-tensor bool masks of a sparse prior (``None`` entries: dense); pruned entries stay 0.
        context_keep: GradNCP's ``gamma`` the prior was trained with (1: full context).
        rescale: with ``context_keep < 1``, step on the *full* tile with the gradient re-scaled to the
            pruned-context norm (Eq. 4) instead of on the pruned context.
        inside: ``(B, P)`` bool, the real pixels of padded edge tiles (default: all).

    Returns:
        The adapted ``(B, ...)`` stacked parameters (detached), ready for ``tiled.forward`` or Adam.
    """
    device = y.device
    b = y.shape[0]
    if x.dim() == 2:
        x = x.unsqueeze(0)
    x = x.to(device)
    theta, m, lr = adapt_state(init_tensors, masks, lrs, inner_lr, device)
    params = expand(theta, b)
    with torch.enable_grad():
        params, _ = inner_loop(params, lr, x, y, steps, w0_first=w0_first, w0_hidden=w0_hidden,
                               keep=context_keep, masks=m, inside=inside, rescale=rescale, detach=True)
    return params


def adapt_state(init_tensors: Sequence[Any], masks: Optional[Sequence[Any]], lrs: Any, inner_lr: float,
                device: torch.device) -> tuple[Tensors, Optional[list[Optional[torch.Tensor]]], LRs]:
    """``(theta, masks, step sizes)`` on ``device`` for an adaptation from ``init_tensors``: masks
    as bool tensors (all-true ones dropped) applied to theta; step sizes ``lrs`` (per-parameter
    tensors, or one number), else ``inner_lr``.  Shared by every architecture's ``adapt``."""
    theta = [_as_tensor(t, device) for t in init_tensors]
    m: Optional[list[Optional[torch.Tensor]]] = None
    if masks is not None:
        m = [None if mk is None else torch.as_tensor(np.asarray(mk) if not isinstance(mk, torch.Tensor) else mk,
                                                      device=device).bool() for mk in masks]
        m = [None if mk is None or bool(mk.all()) else mk for mk in m]
        theta = _masked(theta, m)
    if lrs is None:
        lr: LRs = float(inner_lr)
    elif isinstance(lrs, (int, float)):
        lr = float(lrs)
    else:
        lr = [_as_tensor(t, device) for t in lrs]
    return theta, m, lr


def adapt_prior(prior: Any, x: torch.Tensor, y: torch.Tensor, steps: Optional[int] = None, *,
                rescale: Optional[bool] = None, inside: Optional[torch.Tensor] = None) -> Tensors:
    """:func:`adapt` with the settings recorded in a prior's meta (``nfcodec.priors.Prior``):
    its tensors, learned step sizes, masks, ``inner_steps`` (default ``steps``), ``context_keep``
    and ``test_time_rescale`` (GradNCP priors: full-context steps with Eq. 4 re-scaling)."""
    meta = dict(prior.meta)
    n = len(prior.tensors)
    tensors = [prior.values(i) for i in range(n)]
    keep = float(meta.get("context_keep", 1.0))
    if rescale is None:
        rescale = bool(meta.get("test_time_rescale", False))
    return adapt(tensors, prior.lrs, x, y, int(meta.get("inner_steps", 0)) if steps is None else steps,
                 w0_first=float(meta.get("w0_first", 30.0)), w0_hidden=float(meta.get("w0_hidden", 30.0)),
                 masks=prior.masks, context_keep=keep, rescale=rescale, inside=inside,
                 inner_lr=float(meta.get("inner_lr", 1e-2)))
