"""The latent-grid field (arch ``grid``), encoder side: latents, upsampling, synthesis, rate proxy.

    latents y_l (h_l x w_l), l = 0 .. L-1, h_l = ceil(H / 2^l)       (1 channel per level)
      --quantize (noise | straight-through | hard)-->  y^_l
      --bilinear x2^l (align_corners=False, edge clamp), crop to H x W-->  x (H*W, L)
      --synthesis MLP: Linear(L, h1) -> GELU [-> Linear(h1, h2) -> GELU] -> Linear(., 3)-->  RGB in [-1, 1]

The rate of the latents is estimated with the causal context model the file uses
(:mod:`bitstream.causal`): every latent under a Laplace centred on a rounded linear prediction
from six decoded neighbours, with a scale per (level, activity bin).  The coder fits its own
coefficients and tables from the final symbols; the learned scales here only shape training.  Design notes: docs/grid.md.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GridField", "GridVideoField", "latent_sizes", "quantize_latent", "softround", "kumaraswamy_noise", "laplace_bits", "causal_bits", "N_BINS"]

#: Context bins of the training rate model (the coder may use fewer).
N_BINS = 12
#: The proxy rounds its prediction to 1 / PROXY_MU_STEPS (straight-through).  1 (integers, as the
#: 2.5 coder did), although the file's coder (causal4) keeps quarters: training with quarters measured
#: -0.16 dB on average at --bpp 1.0 over kodim01/03/05/09 (before the controller's calibration,
#: docs/benchmarks.md fifth round), and the calibrated controller accounts for the coder's 6% saving.
PROXY_MU_STEPS = 1
#: Initial predictor coefficients (W, N, NW, NE, WW, NN), near what the coder fits on trained latents.
_COEF_INIT = (0.35, 0.35, -0.05, 0.1, 0.05, 0.05)


def latent_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """``(h_l, w_l)`` of each level: ``ceil(H / 2^l) x ceil(W / 2^l)``."""
    return [(-(-height // (1 << l)), -(-width // (1 << l))) for l in range(levels)]


def softround(x: torch.Tensor, t: float) -> torch.Tensor:
    """A differentiable stand-in for ``round`` (Agustsson & Theis 2020): ``floor(x) + 1/2 +
    tanh((frac(x) - 1/2) / t) / (2 tanh(1 / (2 t)))``; -> round as t -> 0, -> x as t grows."""
    f = torch.floor(x)
    return f + 0.5 * torch.tanh((x - f - 0.5) / t) / math.tanh(0.5 / t) + 0.5


def kumaraswamy_noise(like: torch.Tensor, a: float) -> torch.Tensor:
    """Noise in (-1/2, 1/2) from a Kumaraswamy(a, b) law whose mode is 1/2 (C3, Kim et al. 2024):
    ``b = (2^a (a - 1) + 1) / a``; a = 1 is U(-1/2, 1/2), larger a concentrates it near 0."""
    b = (2.0 ** a * (a - 1) + 1) / a
    u = torch.rand_like(like)
    return (1 - (1 - u) ** (1 / b)) ** (1 / a) - 0.5


def quantize_latent(y: torch.Tensor, mode: str, soft: Optional[tuple[float, float]] = None) -> torch.Tensor:
    """``noise``: y + U(-1/2, 1/2), or with ``soft = (t, a)`` the soft-rounded noisy latent of C3
    and Cool-chic, ``softround(softround(y, t) + n, t)`` with Kumaraswamy(a) noise ``n``; ``ste``:
    round with a straight-through gradient; ``hard``: round."""
    if mode == "noise":
        if soft is not None:
            t, a = soft
            return softround(softround(y, t) + kumaraswamy_noise(y, a), t)
        return y + torch.rand_like(y) - 0.5
    if mode == "ste":
        return y + (torch.round(y) - y).detach()
    return torch.round(y)


def laplace_bits(r: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(r) of integer bins ``[r - 1/2, r + 1/2]`` under Laplace(0, exp(log_scale))."""
    b = torch.exp(log_scale).clamp_min(1e-3)
    a = r.abs()
    # P = F(a + 1/2) - F(a - 1/2), symmetric; both branches written without cancellation
    hi = torch.exp(-(a + 0.5) / b)
    lo = torch.where(a >= 0.5, torch.exp(-(a - 0.5).clamp_min(0) / b), 2 - torch.exp(-(0.5 - a).clamp_min(0) / b))
    p = 0.5 * (lo - hi)
    return -torch.log2(p.clamp_min(2.0**-24))


#: Neighbour slices of a plane padded by (2 left, 2 right, 2 top): W, N, NW, NE, WW, NN
#: (the order of :data:`bitstream.causal.CAUSAL_NEIGHBOURS`).
_CAUSAL_SLICES = ((2, 1), (1, 2), (1, 1), (1, 3), (2, 0), (0, 2))
_ACTIVITY = (2.0, 2.0, 2.0, 2.0, 1.0, 1.0)


def causal_bits(y: torch.Tensor, coefs: torch.Tensor, log_bins: torch.Tensor) -> torch.Tensor:
    """Estimated bits of one quantized latent plane ``y`` (h, w), or of planes (..., h, w), under the causal model the file
    uses (:mod:`bitstream.causal`, ``causal4``): ``mu`` = the linear prediction from the
    W, N, NW, NE, WW, NN neighbours (0 outside) with learned ``coefs`` (6,), rounded to
    1 / PROXY_MU_STEPS (straight-through); the residual under a
    Laplace whose scale is ``exp(log_bins[bin])``, bin = bit length of the neighbours' weighted
    activity (detached), capped at ``len(log_bins) - 1``.  The coder refits the coefficients
    (least squares, in 1/64) and its tables from the final symbols."""
    h, w = y.shape[-2:]
    p = F.pad(y, (2, 2, 2, 0))
    n = torch.stack([p[..., a:a + h, b:b + w] for a, b in _CAUSAL_SLICES])
    n = n.detach()   # the rate gradient reaches the coded latent only (measured: as good, simpler)
    mu_real = torch.einsum("k,k...->...", coefs, n)
    mu = mu_real + (torch.round(PROXY_MU_STEPS * mu_real) / PROXY_MU_STEPS - mu_real).detach()
    with torch.no_grad():
        weights = torch.tensor(_ACTIVITY, dtype=y.dtype, device=y.device)
        act = torch.einsum("k,k...->...", weights, (n - mu).abs())
        bins = torch.where(act < 1, torch.zeros_like(act), torch.floor(torch.log2(act.clamp_min(1))) + 1)
        bins = bins.clamp(max=log_bins.numel() - 1).long()
    # gather, not log_bins[bins]: its backward is a scatter-add, ~18x cheaper on the CPU than
    # indexing's index_put (a 768x512 step: 0.144 -> 0.114 s, docs/benchmarks.md "eleventh round")
    scale = log_bins.gather(0, bins.reshape(-1)).reshape(bins.shape)
    return laplace_bits(y - mu, scale).sum()


class GridField(nn.Module):
    """Latent grids + bilinear upsampling + a small synthesis MLP, for one H x W image.

    Args:
        height, width: the image size.
        levels: latent levels L (1:1 .. 1:2^(L-1)).
        hidden: synthesis hidden widths (one or two layers).
    """

    def __init__(self, height: int, width: int, levels: int = 7, hidden: Sequence[int] = (16,),
                 head_kernel: int = 1, arm_hidden: int = 0) -> None:
        super().__init__()
        self.height, self.width, self.levels, self.head_kernel = height, width, levels, head_kernel
        self.sizes = latent_sizes(height, width, levels)
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(h, w)) for h, w in self.sizes)
        dims = [levels, *hidden, 3]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-2], dims[1:-1]))
        self.layers.append(nn.Linear(dims[-2], 3) if head_kernel == 1 else nn.Conv2d(dims[-2], 3, head_kernel))
        self.coefs = nn.Parameter(torch.tensor([_COEF_INIT] * levels))
        self.log_bins = nn.Parameter(torch.zeros(levels, N_BINS))
        # arm_hidden > 0: the rate term is the float context network of the ``arm`` coder (one for
        # every level, as the file stores one), trained with the latents (grid_rate "arm")
        self.arm = None
        if arm_hidden:
            from ..grid_arm import ArmTorchNet

            self.arm = ArmTorchNet(arm_hidden)

    # ------------------------------------------------------------------ parts
    def rate_parameters(self) -> list[nn.Parameter]:
        return [self.coefs, self.log_bins] if self.arm is None else list(self.arm.parameters())

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """Weights and biases in the file's order (the k x k head's weight is (3, hidden, k, k))."""
        return [p for layer in self.layers for p in (layer.weight, layer.bias)]

    def upsample(self, planes: Sequence[torch.Tensor], crop: Optional[tuple[int, int, int, int]] = None) -> torch.Tensor:
        """(n, L) synthesis inputs of the pixels of ``crop`` = (y0, x0, h, w) (default: the image).

        ``planes`` are the (quantized) latents of the crop's latent window (see :meth:`window`)."""
        y0, x0, h, w = crop if crop is not None else (0, 0, self.height, self.width)
        cols = []
        for l, p in enumerate(planes):
            f = 1 << l
            a, b = self._window_start(y0, l), self._window_start(x0, l)
            if f == 1:
                u = p
            else:
                u = F.interpolate(p[None, None], size=(p.shape[0] * f, p.shape[1] * f), mode="bilinear",
                                  align_corners=False)[0, 0]
            r, c = y0 - a * f, x0 - b * f
            cols.append(u[r:r + h, c:c + w].reshape(-1))
        return torch.stack(cols, dim=1)

    @staticmethod
    def _window_start(start: int, level: int) -> int:
        return max(0, (start >> level) - 1)

    def window(self, l: int, crop: Optional[tuple[int, int, int, int]]) -> tuple[slice, slice]:
        """Rows and columns of level ``l``'s latents that the pixels of ``crop`` read (one latent of margin)."""
        if crop is None:
            return slice(None), slice(None)
        y0, x0, h, w = crop
        hl, wl = self.sizes[l]
        a, b = self._window_start(y0, l), self._window_start(x0, l)
        return slice(a, min(hl, ((y0 + h - 1) >> l) + 2)), slice(b, min(wl, ((x0 + w - 1) >> l) + 2))

    def synthesize(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.gelu(layer(x))
        return self.layers[-1](x)

    def _rate(self, mode: str, crop: Optional[tuple[int, int, int, int]], soft: Optional[tuple[float, float]] = None
              ) -> tuple[list[torch.Tensor], torch.Tensor]:
        planes, bits = [], torch.zeros((), device=self.log_bins.device)
        for l, y in enumerate(self.latents):
            rs, cs = self.window(l, crop)
            q = quantize_latent(y[rs, cs], mode, soft)
            planes.append(q)
            if self.arm is None:
                bits = bits + causal_bits(q, self.coefs[l], self.log_bins[l])
            else:
                from ..grid_arm import arm_plane_bits

                bits = bits + arm_plane_bits(q, self.arm)
        return planes, bits

    def bits(self, mode: str = "hard") -> torch.Tensor:
        """Estimated bits of every latent (the whole image's or video's rate)."""
        return self._rate(mode, None)[1]

    def forward_prefix(self, mode: str, cut: int, soft: Optional[tuple[float, float]] = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Whole image, per-pixel head: ``(rgb, rgb of the levels >= cut alone, bits)``; the second
        is what a cut streamable file decodes (its finer planes zeros, which upsample to zeros)."""
        planes, bits = self._rate(mode, None, soft)
        x = self.upsample(planes)
        coarse = torch.cat([torch.zeros_like(x[:, :cut]), x[:, cut:]], dim=1)
        return self.synthesize(x), self.synthesize(coarse), bits

    def forward(self, mode: str = "noise", crop: Optional[tuple[int, int, int, int]] = None,
                soft: Optional[tuple[float, float]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rgb (n, 3) in [-1, 1] scale, estimated latent bits of the window)``; ``soft = (t, a)``
        makes the ``noise`` mode soft-rounded (see :func:`quantize_latent`)."""
        if self.head_kernel == 1:
            planes, bits = self._rate(mode, crop, soft)
            return self.synthesize(self.upsample(planes, crop)), bits
        # k x k head: hidden maps of the crop plus a margin of k // 2 (zeros only outside the image)
        p = self.head_kernel // 2
        y0, x0, h, w = crop if crop is not None else (0, 0, self.height, self.width)
        a, b = max(0, y0 - p), max(0, x0 - p)
        c, d = min(self.height, y0 + h + p), min(self.width, x0 + w + p)
        box = (a, b, c - a, d - b)
        planes, bits = self._rate(mode, box, soft)
        x = self.upsample(planes, box)
        for layer in self.layers[:-1]:
            x = F.gelu(layer(x))
        x = x.T.reshape(1, -1, c - a, d - b)
        x = F.pad(x, (p - (x0 - b), p - (d - x0 - w), p - (y0 - a), p - (c - y0 - h)))
        return self.layers[-1](x)[0].reshape(3, -1).T, bits


class GridVideoField(GridField):
    """The latent grid over (t, y, x) (arch ``grid-video``): level ``l`` holds ``ceil(T / 2^l)``
    planes of ``ceil(H / 2^l) x ceil(W / 2^l)`` latents, upsampled by ``2^l`` along time, rows and
    columns (trilinear, ``align_corners=False``: the file's integer rule), and the image grid's
    per-pixel synthesis.  A training step renders a few frames; its rate term covers the latent
    planes those frames read, scaled to the whole video (see :meth:`forward`)."""

    def __init__(self, frames: int, height: int, width: int, levels: int = 7, hidden: Sequence[int] = (16,)) -> None:
        super().__init__(height, width, levels, hidden, 1, 0)
        self.frames = frames
        self.sizes3 = [(-(-frames // (1 << l)), h, w) for l, (h, w) in enumerate(self.sizes)]
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(t, h, w)) for t, h, w in self.sizes3)

    def _taps(self, l: int, ks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Planes ``j0``, ``j1`` frames ``ks`` read at level ``l`` and the weight of ``j1`` (of 1)."""
        f = 1 << l
        n = (2 * ks + 1 - f).clamp_min(0)
        j0 = torch.div(n, 2 * f, rounding_mode="floor")
        r = n - j0 * 2 * f
        return j0, (j0 + 1).clamp_max(self.sizes3[l][0] - 1), r.to(torch.float32) / (2 * f)

    def forward(self, mode: str = "noise", crop: Optional[tuple[int, int, int, int]] = None,
                soft: Optional[tuple[float, float]] = None, frames: Optional[Sequence[int]] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rgb (len(frames) * H * W, 3), estimated bits of the video)`` for ``frames`` (default all).

        The rate term is the bits of the planes the frames read, level by level, times the level's
        planes over the planes read: every plane enters it as often as its frames enter the
        distortion, and its expectation is the whole video's rate."""
        if crop is not None:
            raise ValueError("a video grid trains on whole frames")
        dev = self.log_bins.device
        ks = torch.arange(self.frames, device=dev) if frames is None else torch.as_tensor(list(frames), device=dev)
        cols, bits = [], torch.zeros((), device=dev)
        for l, y in enumerate(self.latents):
            j0, j1, r = self._taps(l, ks)
            used, inv = torch.unique(torch.cat([j0, j1]), return_inverse=True)
            q = quantize_latent(y[used], mode, soft)
            bits = bits + causal_bits(q, self.coefs[l], self.log_bins[l]) * (y.shape[0] / used.numel())
            a, b = inv[:ks.numel()], inv[ks.numel():]
            p = q[a] * (1 - r)[:, None, None] + q[b] * r[:, None, None]
            f = 1 << l
            if f > 1:
                p = F.interpolate(p[:, None], size=(p.shape[1] * f, p.shape[2] * f), mode="bilinear",
                                  align_corners=False)[:, 0]
            cols.append(p[:, :self.height, :self.width].reshape(-1))
        return self.synthesize(torch.stack(cols, dim=1)), bits
