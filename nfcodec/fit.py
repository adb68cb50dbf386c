"""Fitting a neural field to a signal (encoder only; the decoder never imports this).

The loop is generic: a model, a sampler of training batches (:mod:`nfcodec.samplers`: pixels
of an image, pixels of a clip, whole frames for NeRV) and a :class:`FitConfig`.  It trains with
Adam on minibatches with a linear warm-up then cosine learning-rate decay, then picks one
quantization step per tensor from the bit depth.  An optional quantization-aware fine-tune
(``qat_fraction`` x steps more steps through the quantizer, see :mod:`nfcodec.qat`) can follow.

Representations plug into the loop through :class:`FitHooks` (callbacks), never through
branches here: they choose what is trained (``prepare``, ``trainable``), add phases after the
float fit (``phases``: the pruning rounds of :class:`nfcodec.prune.PruneHooks`), act around each
optimizer step (``after_backward``, ``after_step``), and say which tensors get quantization steps
and keep masks.  The supermask representation trains scores and scales instead of weights
(:class:`nfcodec.models.supermask.SupermaskHooks`).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

import torch
from torch.func import functional_call

from . import quant
from .config import FitConfig, PruneConfig, QuantConfig
from .devices import resolve_device
from .qat import fake_quant, qat_lr_factor, qat_optimizer
from .results import FitResult

__all__ = ["fit", "fit_sampler", "total_steps", "Sampler", "resolve_device", "choose_steps", "FitHooks", "Phase"]

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


@dataclass
class Phase:
    """Extra training after the float fit: ``start()`` runs first (e.g. prune to the next
    sparsity), then ``steps`` steps of a fresh Adam whose rate at step ``i`` is ``lr_at(i)``."""

    steps: int
    peak_lr: float
    lr_at: Callable[[int], float]
    start: Optional[Callable[[], None]] = None


class FitHooks:
    """How a representation plugs into :func:`fit_sampler`.  The defaults fit every weight (dense).

    Attributes:
        quantized: the fit chooses one quantization step per parameter (False: the payload has
            no steps, and the quantization-aware fine-tune is skipped).
    """

    quantized = True

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to train, whose forward gives the prediction (default: ``model`` itself)."""
        return model

    def trainable(self, net: torch.nn.Module) -> list[torch.Tensor]:
        return list(net.parameters())

    def lr(self, lr: float) -> float:
        """The peak learning rate of the trainable tensors (default: the fit's)."""
        return lr

    def phases(self, params: Sequence[torch.Tensor], fit_steps: int, lr: float, final_lr_ratio: float) -> list[Phase]:
        return []

    def after_backward(self, params: Sequence[torch.Tensor]) -> None:
        """Between ``backward`` and the optimizer step (e.g. zero the gradients of pruned weights)."""

    def after_step(self, params: Sequence[torch.Tensor]) -> None:
        """After each optimizer step (e.g. hold pruned weights at zero)."""

    def masks(self, params: Sequence[torch.Tensor]) -> list[Optional[torch.Tensor]]:
        """Keep masks per parameter (None: not masked), used by the fine-tune and exported."""
        return [None] * len(params)

    def result(self, net: torch.nn.Module) -> dict[str, Any]:
        """Representation state for :attr:`FitResult.extra` (default: nothing)."""
        return {}


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
    from .prune import PruneHooks
    from .samplers import PixelSampler

    hooks = PruneHooks(prune_cfg) if prune_cfg is not None else None
    return fit_sampler(model, PixelSampler(coords, target, fit_cfg.batch_pixels), fit_cfg, quant_cfg, hooks,
                       progress=progress)


def total_steps(fit_cfg: FitConfig, sampler: Sampler) -> int:
    """``epochs * steps_per_epoch`` when ``fit_cfg.epochs`` is set, else ``fit_cfg.steps``."""
    return fit_cfg.epochs * sampler.steps_per_epoch if fit_cfg.epochs else fit_cfg.steps


def fit_sampler(model: torch.nn.Module, sampler: Sampler, fit_cfg: FitConfig, quant_cfg: QuantConfig,
                hooks: FitHooks | None = None, *, progress: ProgressFn | None = None) -> FitResult:
    """Fit ``sampler.output(net(inputs)) ~ targets`` in place and choose quantization steps.

    Phases, one running step count (``progress`` sees their sum):

    1. Adam with linear warm-up and cosine decay over :func:`total_steps` steps (``F``) on the
       hooks' ``trainable`` tensors of ``net = hooks.prepare(model)``.
    2. The hooks' extra phases (pruning: ``prune_rounds`` rounds of pruning then fine-tuning).
    3. With ``hooks.quantized``: quantization steps are chosen (after pruning: from the survivors).
    4. When ``qat_fraction > 0`` (and ``hooks.quantized``): ``round(F * qat_fraction)`` steps
       through the quantizer, keeping the hooks' masks.

    On CUDA with ``fit_cfg.amp`` the forward pass runs under bf16 autocast (the loss in float32).

    Returns:
        A :class:`FitResult`: per-tensor step indices (``()`` when not quantized), the keep
        masks of masked tensors (flattened bool; ``()`` when none are masked) and the hooks'
        ``result``.
    """
    hooks = hooks or FitHooks()
    device = resolve_device(fit_cfg.device)
    cfg = dataclasses.replace(fit_cfg, steps=total_steps(fit_cfg, sampler), epochs=0, lr=hooks.lr(fit_cfg.lr))
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    net = hooks.prepare(model).to(device).train()
    sampler.to(device)
    amp = cfg.amp and device.type == "cuda"
    params = hooks.trainable(net)
    phases = hooks.phases(params, cfg.steps, cfg.lr, cfg.final_lr_ratio)
    qat_start = cfg.steps + sum(p.steps for p in phases)
    qat_steps = int(round(cfg.steps * quant_cfg.qat_fraction)) if hooks.quantized else 0
    total = qat_start + qat_steps
    report_every = max(1, total // 200)
    state = {"step": 0, "ema": None, "loss": None}
    t0 = time.perf_counter()

    def train(opt: torch.optim.Optimizer, n: int, lr_at: Callable[[int, dict], float],
              forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
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
            hooks.after_backward(params)
            opt.step()
            hooks.after_step(params)
            state["loss"] = loss
            if progress is not None and (step % report_every == 0 or step == total - 1):
                mse = float(loss.detach())
                state["ema"] = mse if state["ema"] is None else 0.9 * state["ema"] + 0.1 * mse
                progress(step + 1, total, _psnr_from_mse(state["ema"]))
            state["step"] = step + 1

    # 1. float fit
    train(torch.optim.Adam(params, lr=cfg.lr), cfg.steps, lambda i, g: _lr_at(i, cfg), net)
    # 2. the representation's phases (a fresh Adam each: no stale moments)
    for phase in phases:
        if phase.start is not None:
            phase.start()
        train(torch.optim.Adam(params, lr=phase.peak_lr), phase.steps, lambda i, g, p=phase: p.lr_at(i), net)
    masks = hooks.masks(params)
    steps_idx: tuple[int, ...] = ()
    if hooks.quantized:
        # 3. quantization steps, from what survived
        steps_idx = choose_steps(params, quant_cfg.bits)
        # 4. quantization-aware fine-tune
        if qat_steps:
            names = [name for name, _ in net.named_parameters()]
            step_vals = [quant.STEP_TABLE[i] for i in steps_idx]

            def qat_forward(x: torch.Tensor) -> torch.Tensor:
                fq = {}
                for nm, p, s, m in zip(names, params, step_vals, masks):
                    w = fake_quant(p, s, quant_cfg.qat_mode)
                    fq[nm] = w if m is None else w * m   # pruned weights are exactly 0 in the file
                return functional_call(net, fq, (x,))

            train(qat_optimizer(params, step_vals, quant_cfg.qat_lr), qat_steps,
                  lambda i, g: g["base_lr"] * qat_lr_factor(qat_start + i, qat_start, total), qat_forward)

    net.to("cpu").eval()
    model.to("cpu").eval()
    final = state["ema"] if state["ema"] is not None else float(state["loss"].detach())
    fit_masks = tuple(None if m is None else m.detach().cpu().numpy().reshape(-1).astype(bool) for m in masks)
    if all(m is None for m in fit_masks):
        fit_masks = ()
    return FitResult(steps_idx, time.perf_counter() - t0, _psnr_from_mse(final), str(device), fit_masks,
                     hooks.result(net))


def _psnr_from_mse(mse_pm1: float) -> float:
    """PSNR in dB of an MSE measured on targets scaled to [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4.0 / max(mse_pm1, 1e-12))
