"""Fitting a neural field to a signal (encoder only; the decoder never imports this).

The loop is generic: a model, a sampler of training batches (:mod:`nfcodec.samplers`: pixels
of an image, pixels of a clip, whole frames for NeRV) and a :class:`FitConfig`.  It trains with
Adam on minibatches with a linear warm-up then cosine learning-rate decay, then picks one
quantization step per tensor from the bit depth.  An optional quantization-aware fine-tune
(``qat_fraction`` x steps more steps through the quantizer, see :mod:`nfcodec.qat`) can follow.

With a :class:`PruneConfig` (the ``pruned`` representation) a pruning phase sits between the
two: ``prune_rounds`` rounds of magnitude pruning (:mod:`nfcodec.prune`), each followed by a
fine-tune of the survivors with the pruned weights held at exactly zero.  Quantization steps are
chosen after it, from the survivors, and the quantization-aware fine-tune keeps the masks.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Protocol, Sequence

import torch
from torch.func import functional_call

from . import prune, quant
from .config import FitConfig, PruneConfig, QuantConfig
from .devices import resolve_device
from .qat import fake_quant, qat_lr_factor, qat_optimizer
from .results import FitResult

__all__ = ["fit", "fit_sampler", "total_steps", "Sampler", "resolve_device", "choose_steps"]

ProgressFn = Callable[[int, int, float], None]   # (step, total, running PSNR in dB)


def choose_steps(params: Sequence[torch.Tensor], bits: int) -> tuple[int, ...]:
    """One quantization-step index per tensor from its largest magnitude and the bit depth."""
    return tuple(quant.step_index_for(float(p.detach().abs().max()) if p.numel() else 0.0, bits) for p in params)


def _lr_at(step: int, cfg: FitConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    lo = cfg.lr * cfg.final_lr_ratio
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * min(1.0, t)))


class Sampler(Protocol):
    """Where training batches come from (see :mod:`nfcodec.samplers`)."""

    steps_per_epoch: int

    def to(self, device: torch.device) -> None: ...

    def next(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...

    def output(self, pred: torch.Tensor) -> torch.Tensor: ...


def fit(model: torch.nn.Module, coords: torch.Tensor, target: torch.Tensor, fit_cfg: FitConfig,
        quant_cfg: QuantConfig, prune_cfg: PruneConfig | None = None, *,
        progress: ProgressFn | None = None) -> FitResult:
    """Fit ``model(coords) ~ target`` in place on pixel minibatches (see :func:`fit_sampler`).

    Args:
        model: the network; its parameters are trained in place and left on the CPU.
        coords: (N, in_features) float32 coordinates.
        target: (N, out_features) float32 targets in [-1, 1].
        fit_cfg: optimisation settings.
        quant_cfg: bit depth and the share of steps trained through the quantizer.
        prune_cfg: magnitude pruning settings (``pruned`` representation), None for none.
        progress: called every few steps with (step, total, running PSNR).

    Returns:
        A :class:`FitResult` with the per-tensor step indices (and masks) to export with.
    """
    from .samplers import PixelSampler

    return fit_sampler(model, PixelSampler(coords, target, fit_cfg.batch_pixels), fit_cfg, quant_cfg, prune_cfg,
                       progress=progress)


def total_steps(fit_cfg: FitConfig, sampler: Sampler) -> int:
    """``epochs * steps_per_epoch`` when ``fit_cfg.epochs`` is set, else ``fit_cfg.steps``."""
    return fit_cfg.epochs * sampler.steps_per_epoch if fit_cfg.epochs else fit_cfg.steps


def fit_sampler(model: torch.nn.Module, sampler: Sampler, fit_cfg: FitConfig, quant_cfg: QuantConfig,
                prune_cfg: PruneConfig | None = None, *, progress: ProgressFn | None = None) -> FitResult:
    """Fit ``sampler.output(model(inputs)) ~ targets`` in place and choose quantization steps.

    Phases, one running step count (``progress`` sees their sum):

    1. Adam with linear warm-up and cosine decay over :func:`total_steps` steps (``F``).
    2. Only with ``prune_cfg``: ``prune_rounds`` rounds of magnitude pruning up to
       ``prune_cfg.sparsity`` (geometric schedule, :func:`nfcodec.prune.schedule`), each followed
       by ``round(prune_fraction * F / prune_rounds)`` steps of a fresh Adam at
       ``0.3 x lr`` (warm-up, cosine decay) with pruned weights held at exactly zero.
    3. Quantization steps are chosen (after pruning: from the survivors).
    4. When ``qat_fraction > 0``: ``round(F * qat_fraction)`` steps through the quantizer,
       keeping the masks (pruned weights stay zero in the forward pass and in the weights).

    On CUDA with ``fit_cfg.amp`` the forward pass runs under bf16 autocast (the loss in float32).

    Args:
        prune_cfg: pruning settings, or None for a dense fit.  With ``sparsity == 0`` nothing
            is pruned or fine-tuned, but the prunable tensors still get (all-True) masks.

    Returns:
        A :class:`FitResult` with the per-tensor step indices to export with and, with
        ``prune_cfg``, the keep masks (flattened bool arrays for the prunable tensors,
        :func:`nfcodec.prune.is_prunable`; None for the others).
    """
    device = resolve_device(fit_cfg.device)
    cfg = dataclasses.replace(fit_cfg, steps=total_steps(fit_cfg, sampler), epochs=0)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device).train()
    sampler.to(device)
    amp = cfg.amp and device.type == "cuda"
    names = [name for name, _ in model.named_parameters()]
    params = list(model.parameters())
    # Float training runs its whole schedule; pruning rounds and the quantization-aware
    # fine-tune are appended.
    float_cfg = cfg
    masks: list[prune.Mask] = [None] * len(params)
    sparsities: list[float] = []
    round_len = 0
    if prune_cfg is not None:
        masks = prune.magnitude_masks(params, 0.0)
        if prune_cfg.sparsity > 0:
            sparsities = prune.schedule(prune_cfg.sparsity, prune_cfg.prune_rounds)
            round_len = prune.round_steps(cfg.steps, prune_cfg.prune_fraction, prune_cfg.prune_rounds)
    qat_start = cfg.steps + round_len * len(sparsities)
    total = qat_start + int(round(cfg.steps * quant_cfg.qat_fraction))
    report_every = max(1, total // 200)
    state = {"step": 0, "ema": None, "loss": None}
    t0 = time.perf_counter()

    def train(opt: torch.optim.Optimizer, n: int, lr_at: Callable[[int, dict], float],
              forward: Callable[[torch.Tensor], torch.Tensor], masked: bool) -> None:
        for i in range(n):
            step = state["step"]
            for g in opt.param_groups:
                g["lr"] = lr_at(i, g)
            x, y = sampler.next(gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                pred = forward(x)
            loss = torch.mean((sampler.output(pred).float() - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if masked:
                prune.mask_grads_(params, masks)
            opt.step()
            if masked:
                prune.apply_masks_(params, masks)
            state["loss"] = loss
            if progress is not None and (step % report_every == 0 or step == total - 1):
                mse = float(loss.detach())
                state["ema"] = mse if state["ema"] is None else 0.9 * state["ema"] + 0.1 * mse
                progress(step + 1, total, _psnr_from_mse(state["ema"]))
            state["step"] = step + 1

    # 1. float fit
    train(torch.optim.Adam(params, lr=cfg.lr), cfg.steps, lambda i, g: _lr_at(i, float_cfg), model, False)
    # 2. prune, then fine-tune the survivors (a fresh Adam per round: no stale moments)
    peak = prune.FINETUNE_LR * cfg.lr
    for sparsity in sparsities:
        masks = prune.magnitude_masks(params, sparsity, prune_cfg.prune_scope, masks)
        prune.apply_masks_(params, masks)
        train(torch.optim.Adam(params, lr=peak), round_len,
              lambda i, g: prune.finetune_lr(i, round_len, peak, cfg.final_lr_ratio), model, True)
    # 3. quantization steps, from what survived
    steps_idx = choose_steps(params, quant_cfg.bits)
    # 4. quantization-aware fine-tune
    if total > qat_start:
        step_vals = [quant.STEP_TABLE[i] for i in steps_idx]

        def qat_forward(x: torch.Tensor) -> torch.Tensor:
            fq = {}
            for nm, p, s, m in zip(names, params, step_vals, masks):
                w = fake_quant(p, s, quant_cfg.qat_mode)
                fq[nm] = w if m is None else w * m   # pruned weights are exactly 0 in the file
            return functional_call(model, fq, (x,))

        train(qat_optimizer(params, step_vals, quant_cfg.qat_lr), total - qat_start,
              lambda i, g: g["base_lr"] * qat_lr_factor(qat_start + i, qat_start, total), qat_forward,
              prune_cfg is not None)

    model.to("cpu").eval()
    final = state["ema"] if state["ema"] is not None else float(state["loss"].detach())
    fit_masks = prune.masks_to_numpy(masks) if prune_cfg is not None else ()
    return FitResult(steps_idx, time.perf_counter() - t0, _psnr_from_mse(final), str(device), fit_masks)


def _psnr_from_mse(mse_pm1: float) -> float:
    """PSNR in dB of an MSE measured on targets scaled to [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4.0 / max(mse_pm1, 1e-12))
