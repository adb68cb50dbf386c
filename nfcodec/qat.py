"""Quantization-aware fine-tuning (encoder only).

The last ``qat_fraction`` of a fit runs the network through the quantizer the file will use:
the forward pass sees ``round(w / step) * step``, the gradient passes straight through to the
float weights.  Adam moves every weight by about its learning rate per step whatever the
gradient's size, and the fit's own rate is often larger than a fine tensor's quantization step,
so straight-through training with it hops weights across several levels at random (measured:
it ends *below* plain rounding).  This phase therefore gives each tensor its own Adam rate, a
fraction ``qat_lr`` of its quantization step, decayed from 1x to 0.1x by a cosine, so a weight
crosses a level only when its gradient keeps pointing that way.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["fake_quant", "qat_optimizer", "qat_lr_factor"]


def fake_quant(p: torch.Tensor, step: float, mode: str = "ste") -> torch.Tensor:
    """What the forward pass sees of a weight during quantization-aware training.

    ``ste``: rounded to the step, identity gradient (straight-through).  ``noise``: the weight
    plus uniform noise in ``[-step/2, step/2)`` (the additive-noise proxy of rounding used by
    learned compression; the gradient is exact).
    """
    if mode == "noise":
        return p + (torch.rand_like(p) - 0.5) * step
    return p + (torch.round(p / step) * step - p).detach()


def qat_optimizer(params: Sequence[torch.Tensor], step_vals: Sequence[float], scale: float) -> torch.optim.Adam:
    """Adam with one group per tensor, learning rate ``scale * step`` (``base_lr`` kept for decay)."""
    return torch.optim.Adam([{"params": [p], "lr": scale * s, "base_lr": scale * s}
                             for p, s in zip(params, step_vals)])


def qat_lr_factor(step: int, start: int, total: int) -> float:
    """Cosine decay from 1 to 0.1 over the quantization-aware phase ``[start, total)``."""
    t = (step - start) / max(1, total - start)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, t)))
