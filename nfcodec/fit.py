"""Fitting a neural field to a signal (encoder only; the decoder never imports this).

The loop is generic: a model, a sampler of training batches (:mod:`nfcodec.samplers`: pixels
of an image, pixels of a clip, whole frames for NeRV) and a :class:`FitConfig`.  It trains with
Adam on minibatches with a linear warm-up then cosine learning-rate decay, then picks one
quantization step per tensor from the bit depth.  An optional quantization-aware fine-tune
(``qat_fraction`` x steps more steps through the quantizer, see :mod:`nfcodec.qat`) can follow.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Protocol, Sequence

import torch
from torch.func import functional_call

from . import quant
from .config import FitConfig, QuantConfig
from .errors import ConfigError
from .qat import fake_quant, qat_lr_factor, qat_optimizer
from .results import FitResult

__all__ = ["fit", "fit_sampler", "total_steps", "Sampler", "resolve_device", "choose_steps"]

ProgressFn = Callable[[int, int, float], None]   # (step, total, running PSNR in dB)


def resolve_device(name: str) -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a device; ``auto`` takes CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda requested but no CUDA GPU is available")
    return dev


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
        quant_cfg: QuantConfig, *, progress: ProgressFn | None = None) -> FitResult:
    """Fit ``model(coords) ~ target`` in place on pixel minibatches (see :func:`fit_sampler`).

    Args:
        model: the network; its parameters are trained in place and left on the CPU.
        coords: (N, in_features) float32 coordinates.
        target: (N, out_features) float32 targets in [-1, 1].
        fit_cfg: optimisation settings.
        quant_cfg: bit depth and the share of steps trained through the quantizer.
        progress: called every few steps with (step, total, running PSNR).

    Returns:
        A :class:`FitResult` with the per-tensor step indices to export with.
    """
    from .samplers import PixelSampler

    return fit_sampler(model, PixelSampler(coords, target, fit_cfg.batch_pixels), fit_cfg, quant_cfg,
                       progress=progress)


def total_steps(fit_cfg: FitConfig, sampler: Sampler) -> int:
    """``epochs * steps_per_epoch`` when ``fit_cfg.epochs`` is set, else ``fit_cfg.steps``."""
    return fit_cfg.epochs * sampler.steps_per_epoch if fit_cfg.epochs else fit_cfg.steps


def fit_sampler(model: torch.nn.Module, sampler: Sampler, fit_cfg: FitConfig, quant_cfg: QuantConfig, *,
                progress: ProgressFn | None = None) -> FitResult:
    """Fit ``sampler.output(model(inputs)) ~ targets`` in place and choose quantization steps.

    Adam with linear warm-up and cosine decay over :func:`total_steps` steps, then (when
    ``qat_fraction > 0``) that many times ``qat_fraction`` more steps through the quantizer.  On CUDA with ``fit_cfg.amp`` the forward
    pass runs under bf16 autocast (the loss in float32).

    Returns:
        A :class:`FitResult` with the per-tensor step indices to export with.
    """
    device = resolve_device(fit_cfg.device)
    cfg = dataclasses.replace(fit_cfg, steps=total_steps(fit_cfg, sampler), epochs=0)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device).train()
    sampler.to(device)
    amp = cfg.amp and device.type == "cuda"
    names = [name for name, _ in model.named_parameters()]
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    # Float training runs its whole schedule; the quantization-aware fine-tune is appended.
    float_cfg = cfg
    qat_start = cfg.steps
    cfg = dataclasses.replace(cfg, steps=cfg.steps + int(round(cfg.steps * quant_cfg.qat_fraction)))
    steps_idx: tuple[int, ...] | None = None
    ema_mse, t0 = None, time.perf_counter()
    report_every = max(1, cfg.steps // 200)

    for step in range(cfg.steps):
        if step == qat_start:
            steps_idx = choose_steps(params, quant_cfg.bits)
            step_vals = [quant.STEP_TABLE[i] for i in steps_idx]
            opt = qat_optimizer(params, step_vals, quant_cfg.qat_lr)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, float_cfg) if steps_idx is None else g["base_lr"] * qat_lr_factor(step, qat_start, cfg.steps)
        x, y = sampler.next(gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            if steps_idx is None:
                pred = model(x)
            else:
                fq = {nm: fake_quant(p, s, quant_cfg.qat_mode) for nm, p, s in zip(names, params, step_vals)}
                pred = functional_call(model, fq, (x,))
        loss = torch.mean((sampler.output(pred).float() - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None and (step % report_every == 0 or step == cfg.steps - 1):
            mse = float(loss.detach())
            ema_mse = mse if ema_mse is None else 0.9 * ema_mse + 0.1 * mse
            progress(step + 1, cfg.steps, _psnr_from_mse(ema_mse))

    if steps_idx is None:
        steps_idx = choose_steps(params, quant_cfg.bits)
    model.to("cpu").eval()
    final = ema_mse if ema_mse is not None else float(loss.detach())
    return FitResult(steps_idx, time.perf_counter() - t0, _psnr_from_mse(final), str(device))


def _psnr_from_mse(mse_pm1: float) -> float:
    """PSNR in dB of an MSE measured on targets scaled to [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4.0 / max(mse_pm1, 1e-12))
