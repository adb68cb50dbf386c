"""Training of the supermask representation (encoder only; the decoder never imports this).

Multi-level supermasks with learned scales (Choi, Kang & Oh, ICML 2023, Algorithm 1): the
network's weights and biases are frozen at the values the decoder regenerates from the seed
(:func:`nfcodec.exact.rng.sample_symbols`, exactly the same numbers).  Each weight tensor gets a
score per weight; each forward pass ranks ``|score|`` per tensor (layer-wise top-k) and counts
how many of the nested levels keep each weight (level n keeps the top ``k_n`` share), and the
weight used is ``w_rand * (alpha_1 + ... + alpha_c)`` with ``c`` that count (0: pruned).
Gradients pass straight through the top-k (edge-popup's estimator): ``d w / d |s| = w_rand *
(alpha_1 + ... + alpha_N)``.  ``alpha_1`` is fixed at ``1 / sqrt(k_1)`` (the paper's 1 for the
law of the kept fan-in, see :mod:`nfcodec.reps.supermask`); ``alpha_2 .. alpha_N`` start at a
quarter of it and are trained, clipped to ``>= 2^-8`` and rounded to the 8 fractional bits the file
stores (straight-through), so the network trained is the network decoded.  Only the scores and scales train; biases stay random.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..config import SupermaskConfig
from ..exact import rng
from ..fit import FitHooks
from ..quant import STEP_TABLE
from ..reps.supermask import SCALE_FRAC, first_scale, level_counts, level_densities

__all__ = ["SupermaskNet", "SupermaskHooks", "frozen_values"]


def frozen_values(seed: int, index: int, law: rng.Law, shape: Sequence[int]) -> torch.Tensor:
    """The frozen float32 values of tensor ``index`` (``Z * step``: exact in float32)."""
    z = rng.sample_symbols(seed, index, law, math.prod(shape))
    return torch.from_numpy((z.astype(np.float64) * STEP_TABLE[rng.law_step(law)]).astype(np.float32)).view(*shape)


class SupermaskNet(nn.Module):
    """``base`` with frozen random parameters, trainable scores (weights) and scales."""

    def __init__(self, base: nn.Module, seed: int, laws: Sequence[rng.Law], cfg: SupermaskConfig,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.names = [n for n, _ in base.named_parameters()]
        shapes = [tuple(p.shape) for p in base.parameters()]
        self.masked = [i for i, s in enumerate(shapes) if len(s) >= 2]
        for i, (name, shape) in enumerate(zip(self.names, shapes)):
            self.register_buffer(f"rand{i}", frozen_values(seed, i, laws[i], shape))
        dens = level_densities(cfg.density, cfg.levels)
        self.counts = {i: level_counts(math.prod(shapes[i]), dens) for i in self.masked}
        # scores: U(-1, 1) / sqrt(fan_in), as edge-popup's Kaiming-uniform score init
        self.scores = nn.ParameterList()
        for i in self.masked:
            fan = math.prod(shapes[i][1:])
            s = (torch.rand(shapes[i], generator=generator) * 2 - 1) / math.sqrt(fan)
            self.scores.append(nn.Parameter(s))
        self.alpha1 = first_scale(cfg.density)
        # deeper levels start at a quarter of alpha_1: the signal then keeps its scale through
        # the layers at initialisation (measured on NeRV: output std ~1; 11x with alpha_1)
        self.alpha = nn.Parameter(torch.full((max(cfg.levels - 1, 0),), self.alpha1 / 4))
        self.levels = cfg.levels

    def alphas(self) -> torch.Tensor:
        """``(alpha_1 .. alpha_N)``: the fixed first scale, then the trained ones clipped and rounded as stored."""
        unit = 2.0 ** -SCALE_FRAC
        a = self.alpha.clamp(min=unit)
        a = a + (torch.round(a / unit) * unit - a).detach()     # straight-through rounding
        return torch.cat([a.new_full((1,), self.alpha1), a])

    def level_count(self, k: int, s: torch.Tensor) -> torch.Tensor:
        """How many levels keep each weight (layer-wise top-k of ``|s|``), int64."""
        a = s.detach().abs().flatten()
        c = torch.zeros_like(a, dtype=torch.int64)
        for kept in self.counts[k]:
            if kept <= 0:
                break
            if kept >= a.numel():
                c += 1
                continue
            thr = torch.kthvalue(a, a.numel() - kept + 1).values
            c += (a >= thr).to(torch.int64)
        return c.view_as(s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cum = torch.cumsum(torch.cat([self.alpha.new_zeros(1), self.alphas()]), 0)
        params = {name: getattr(self, f"rand{i}") for i, name in enumerate(self.names)}
        for k, i in enumerate(self.masked):
            s = self.scores[k]
            a = s.abs()        # ranked by |s|: the straight-through gradient reaches s through |s|
            m = cum[self.level_count(i, s)] + (a - a.detach()) * cum[-1].detach()
            params[self.names[i]] = params[self.names[i]] * m
        return functional_call(self.base, params, (x,))


class SupermaskHooks(FitHooks):
    """Plugs the supermask fit into :func:`nfcodec.fit.fit_sampler`: scores and scales train
    (Adam at ``score_lr``, the fit's warm-up and cosine schedule), nothing is quantized."""

    quantized = False

    def __init__(self, cfg: SupermaskConfig, laws: Sequence[rng.Law], seed: int) -> None:
        self.cfg, self.laws, self.seed = cfg, list(laws), seed

    def prepare(self, model: nn.Module) -> nn.Module:
        gen = torch.Generator().manual_seed(self.seed ^ 0x5EED)
        return SupermaskNet(model, self.seed, self.laws, self.cfg, gen)

    def lr(self, lr: float) -> float:
        return self.cfg.score_lr

    def trainable(self, net: nn.Module) -> list[torch.Tensor]:
        return [*net.scores, net.alpha] if net.alpha.numel() else list(net.scores)

    def result(self, net: nn.Module) -> dict[str, Any]:
        alphas = [float(a) for a in net.alphas().detach().cpu()]
        return {"seed": self.seed, "alphas": alphas,
                "scores": {i: s.detach().cpu().numpy() for i, s in zip(net.masked, net.scores)}}
