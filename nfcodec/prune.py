"""Magnitude pruning for the ``pruned`` representation (encoder only; the decoder never imports this).

What is pruned: weight matrices and convolution kernels (``ndim >= 2``) with at least
:data:`MIN_PRUNABLE` elements.  Biases and small tensors (a SIREN's first layer ``width x 2`` and
its RGB head ``3 x width``, for instance) stay dense: they hold few weights, each of which
matters a lot (input frequencies, output mix), and a mask record costs a few bytes of its own.

How: magnitude of the raw weights, as in Meta-SparseINR (Lee et al., 2021), either

* ``global`` -- one threshold over all prunable tensors together: the ``k`` smallest magnitudes
  of the concatenation are removed, ``k = round(sparsity x prunable weights)``; or
* ``layer`` -- the same share in every prunable tensor: ``round(sparsity x n_i)`` per tensor.

Counts are exact (ties are broken by position, first in parameter order then C order), and a
pruned weight stays pruned.  :class:`PruneHooks` plugs this into
:func:`fit_sampler <nfcodec.fit.fit_sampler>`: :func:`schedule` rounds (geometric: the kept share after round ``r`` of ``R`` is
``keep^(r/R)``), each followed by a fine-tune of the survivors with the pruned weights held at
exactly zero (:func:`mask_grads_` before each optimizer step, :func:`apply_masks_` after it).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from .config import PruneConfig
from .fit import FitHooks, Phase

__all__ = ["PruneHooks", "MIN_PRUNABLE", "FINETUNE_LR", "is_prunable", "schedule", "round_steps", "magnitude_masks",
           "apply_masks_", "mask_grads_", "masks_to_numpy", "finetune_lr"]

#: Tensors with fewer elements than this stay dense (as do all 0-d and 1-d tensors).
MIN_PRUNABLE = 256
#: Peak learning rate of each fine-tune round, as a share of the fit's peak rate.
FINETUNE_LR = 0.3

Mask = Optional[torch.Tensor]


def is_prunable(p: torch.Tensor) -> bool:
    """Weight matrices and conv kernels (``ndim >= 2``) of at least :data:`MIN_PRUNABLE` elements."""
    return p.ndim >= 2 and p.numel() >= MIN_PRUNABLE


def schedule(sparsity: float, rounds: int) -> list[float]:
    """Sparsity after each round: ``1 - (1 - sparsity)^(r / rounds)``, r = 1..rounds (the last is exact)."""
    keep = 1.0 - sparsity
    return [1.0 - keep ** (r / rounds) for r in range(1, rounds)] + [sparsity]


def round_steps(fit_steps: int, prune_fraction: float, rounds: int) -> int:
    """Fine-tune steps of each round: ``round(prune_fraction * fit_steps / rounds)``."""
    return int(round(prune_fraction * fit_steps / rounds))


def magnitude_masks(params: Sequence[torch.Tensor], sparsity: float, scope: str = "global",
                    masks: Sequence[Mask] | None = None, eligible: Sequence[Mask] | None = None) -> list[Mask]:
    """Keep masks (bool, shaped like each tensor; None for tensors that are not prunable).

    Args:
        params: the parameters, canonical order.
        sparsity: share of the prunable weights to remove, in [0, 1).
        scope: ``global`` (one threshold over all prunable tensors) or ``layer`` (same share each).
        masks: the previous round's masks; weights they prune stay pruned (and count towards
            ``sparsity``).
        eligible: per tensor, the weights pruning may touch (None: all); the others are always
            kept and do not count (a width-chunks level prunes only the weights it adds).

    Returns:
        One entry per parameter: a bool tensor (True = kept) on the parameter's device, or None.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity={sparsity} outside [0, 1)")
    if scope not in ("global", "layer"):
        raise ValueError(f"prune scope {scope!r} must be 'global' or 'layer'")
    prev = list(masks) if masks is not None else [None] * len(params)
    elig = list(eligible) if eligible is not None else [None] * len(params)
    which = [i for i, p in enumerate(params) if is_prunable(p)]
    out: list[Mask] = [None] * len(params)
    if not which:
        return out

    def scores(i: int) -> torch.Tensor:
        s = params[i].detach().abs().flatten().to(torch.float64)
        if prev[i] is not None:   # already pruned: always the first to go (and never back)
            s = torch.where(prev[i].flatten(), s, torch.full_like(s, -1.0))
        if elig[i] is not None:   # not ours to prune: never goes
            s = torch.where(elig[i].flatten().to(s.device), s, torch.full_like(s, math.inf))
        return s

    def count(i: int) -> int:
        return params[i].numel() if elig[i] is None else int(elig[i].sum())

    def drop(s: torch.Tensor, k: int) -> torch.Tensor:
        keep = torch.ones(s.numel(), dtype=torch.bool, device=s.device)
        if k > 0:
            keep[torch.argsort(s, stable=True)[:k]] = False
        return keep

    if scope == "layer":
        for i in which:
            out[i] = drop(scores(i), int(round(sparsity * count(i)))).view_as(params[i])
        return out
    flat = torch.cat([scores(i).cpu() for i in which])
    keep = drop(flat, int(round(sparsity * sum(count(i) for i in which))))
    start = 0
    for i in which:
        n = params[i].numel()
        out[i] = keep[start:start + n].view_as(params[i]).to(params[i].device)
        start += n
    return out


@torch.no_grad()
def apply_masks_(params: Sequence[torch.Tensor], masks: Sequence[Mask]) -> None:
    """Set pruned weights to exactly zero, in place."""
    for p, m in zip(params, masks):
        if m is not None:
            p.mul_(m)


def mask_grads_(params: Sequence[torch.Tensor], masks: Sequence[Mask]) -> None:
    """Zero the gradients of pruned weights (call between ``backward`` and ``step``)."""
    for p, m in zip(params, masks):
        if m is not None and p.grad is not None:
            p.grad.mul_(m)


def masks_to_numpy(masks: Sequence[Mask]) -> tuple[Optional[np.ndarray], ...]:
    """Flattened (C order) bool numpy arrays, None kept: the form of ``FitResult.masks``."""
    return tuple(None if m is None else m.detach().cpu().numpy().reshape(-1).astype(bool) for m in masks)


def finetune_lr(step: int, n_steps: int, peak: float, final_ratio: float) -> float:
    """Learning rate of a fine-tune round: short linear warm-up (5%), then cosine to ``peak * final_ratio``."""
    warm = max(1, n_steps // 20)
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, n_steps - warm)
    lo = peak * final_ratio
    return lo + 0.5 * (peak - lo) * (1 + math.cos(math.pi * min(1.0, t)))


class PruneHooks(FitHooks):
    """The ``pruned`` representation's fit: after the float fit, ``prune_rounds`` phases each prune
    to the next sparsity of :func:`schedule` and fine-tune the survivors (fresh Adam at
    ``FINETUNE_LR x lr``, warm-up and cosine decay), pruned weights held at exactly zero.
    With ``sparsity == 0`` nothing is pruned, but the prunable tensors still get (all-True) masks.
    """

    def __init__(self, cfg: PruneConfig, eligible: Sequence[Mask] | None = None) -> None:
        self.cfg = cfg
        self.eligible = eligible
        self._masks: list[Mask] = []

    def phases(self, params, fit_steps, lr, final_lr_ratio):
        self._masks = magnitude_masks(params, 0.0)
        if self.cfg.sparsity <= 0:
            return []
        n = round_steps(fit_steps, self.cfg.prune_fraction, self.cfg.prune_rounds)
        peak = FINETUNE_LR * lr

        def start(sparsity: float) -> None:
            self._masks = magnitude_masks(params, sparsity, self.cfg.prune_scope, self._masks, self.eligible)
            apply_masks_(params, self._masks)

        return [Phase(n, peak, lambda i: finetune_lr(i, n, peak, final_lr_ratio), lambda s=s: start(s))
                for s in schedule(self.cfg.sparsity, self.cfg.prune_rounds)]

    def after_backward(self, params) -> None:
        mask_grads_(params, self._masks)

    def after_step(self, params) -> None:
        apply_masks_(params, self._masks)

    def masks(self, params):
        return list(self._masks) if self._masks else magnitude_masks(params, 0.0)
