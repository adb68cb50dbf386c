"""Fitting a neural field to a signal (encoder only; the decoder never imports this).

The loop is generic: a model, coordinates, targets and a :class:`FitConfig`.  It trains with
Adam on random pixel minibatches (each epoch a fresh permutation, so every pixel is seen once
per epoch), a linear warm-up then cosine learning-rate decay, and runs its last
``qat_fraction`` of steps through the quantizer (straight-through rounding with the per-tensor
steps the file will use), so the exported integers lose little.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch
from torch.func import functional_call

from . import quant
from .config import FitConfig, QuantConfig
from .errors import ConfigError
from .results import FitResult

__all__ = ["fit", "resolve_device", "choose_steps"]

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


def _fake_quant(p: torch.Tensor, step: float) -> torch.Tensor:
    """Round to the step in the forward pass, identity gradient (straight-through)."""
    return p + (torch.round(p / step) * step - p).detach()


def fit(model: torch.nn.Module, coords: torch.Tensor, target: torch.Tensor, fit_cfg: FitConfig,
        quant_cfg: QuantConfig, *, progress: ProgressFn | None = None) -> FitResult:
    """Fit ``model(coords) ~ target`` in place and choose quantization steps.

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
    device = resolve_device(fit_cfg.device)
    gen = torch.Generator().manual_seed(fit_cfg.seed)
    model.to(device).train()
    coords, target = coords.to(device), target.to(device)
    n = coords.shape[0]
    batch = n if fit_cfg.batch_pixels == 0 else min(fit_cfg.batch_pixels, n)
    amp = fit_cfg.amp and device.type == "cuda"
    names = [name for name, _ in model.named_parameters()]
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=fit_cfg.lr)
    qat_start = fit_cfg.steps - int(round(fit_cfg.steps * quant_cfg.qat_fraction))
    steps_idx: tuple[int, ...] | None = None
    ema_mse, t0, perm, pos = None, time.perf_counter(), None, n
    report_every = max(1, fit_cfg.steps // 200)

    for step in range(fit_cfg.steps):
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, fit_cfg)
        if step == qat_start:
            steps_idx = choose_steps(params, quant_cfg.bits)
            step_vals = [quant.STEP_TABLE[i] for i in steps_idx]
        if batch == n:
            x, y = coords, target
        else:
            if pos + batch > n:
                perm, pos = torch.randperm(n, generator=gen).to(device), 0
            idx = perm[pos:pos + batch]
            pos += batch
            x, y = coords[idx], target[idx]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            if steps_idx is None:
                pred = model(x)
            else:
                fq = {nm: _fake_quant(p, s) for nm, p, s in zip(names, params, step_vals)}
                pred = functional_call(model, fq, (x,))
        loss = torch.mean((pred.float() - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None and (step % report_every == 0 or step == fit_cfg.steps - 1):
            mse = float(loss.detach())
            ema_mse = mse if ema_mse is None else 0.9 * ema_mse + 0.1 * mse
            progress(step + 1, fit_cfg.steps, _psnr_from_mse(ema_mse))

    if steps_idx is None:
        steps_idx = choose_steps(params, quant_cfg.bits)
    model.to("cpu").eval()
    final = ema_mse if ema_mse is not None else float(loss.detach())
    return FitResult(steps_idx, time.perf_counter() - t0, _psnr_from_mse(final), str(device))


def _psnr_from_mse(mse_pm1: float) -> float:
    """PSNR in dB of an MSE measured on targets scaled to [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4.0 / max(mse_pm1, 1e-12))
