"""Distortion and rate measures on 8-bit RGB."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["mse", "psnr", "bpp", "ms_ssim", "ms_ssim_levels", "msssim_db", "MS_SSIM_WEIGHTS"]


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error between two uint8 arrays of the same shape (over all samples)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all RGB samples (``inf`` for identical inputs)."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(peak * peak / m)


def bpp(nbytes: int, pixels: int) -> float:
    """Bits per pixel of a file: 8 x all its bytes / (frames x width x height)."""
    return 8.0 * nbytes / pixels


# --------------------------------------------------------------------------- MS-SSIM

#: Scale weights of MS-SSIM (Wang, Simoncelli and Bovik, 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN_SIZE, _WIN_SIGMA, _K1, _K2 = 11, 1.5, 0.01, 0.03


def ms_ssim_levels(height: int, width: int) -> int:
    """How many MS-SSIM scales fit an image: the largest L <= 5 with ``min(H, W) > 10 * 2**(L - 1)``.

    This is pytorch-msssim's own size rule (``min side > (win_size - 1) * 2**4 = 160`` for the 5
    standard scales) applied to fewer scales, so that the coarsest scale is still at least as
    large as the 11-tap Gaussian window.  0 means the image is too small for even one scale
    (a side of 10 pixels or less).
    """
    side = min(height, width)
    return max((n for n in range(1, len(MS_SSIM_WEIGHTS) + 1) if side > (_WIN_SIZE - 1) * 2 ** (n - 1)), default=0)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """MS-SSIM of 8-bit RGB images (data range 255): ``(value, levels)``.

    ``a`` and ``b`` are (H, W, 3) images or (T, H, W, 3) clips of the same shape; for a clip
    the value is the mean of the per-frame MS-SSIMs.  Images whose shorter side exceeds 160
    pixels use the standard 5 scales through ``pytorch_msssim.ms_ssim``; smaller ones use the
    ``L = ms_ssim_levels(H, W)`` finest scales with the first ``L`` standard weights renormalised
    to sum to 1 (``L = 1`` is plain SSIM), computed exactly as pytorch-msssim does otherwise.
    Images with a side of 10 pixels or less give ``(nan, 0)``.

    Imports torch (lazily).
    """
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if a.ndim not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (T, H, W, 3) RGB arrays, got shape {a.shape}")
    levels = ms_ssim_levels(a.shape[-3], a.shape[-2])
    if levels == 0:
        return math.nan, 0
    import torch

    x4, y4 = (a[None], b[None]) if a.ndim == 3 else (a, b)
    values = []
    with torch.no_grad():
        for i in range(0, x4.shape[0], 8):    # a few frames at a time: bounded memory for long clips
            x = torch.from_numpy(x4[i:i + 8].astype(np.float32)).permute(0, 3, 1, 2)
            y = torch.from_numpy(y4[i:i + 8].astype(np.float32)).permute(0, 3, 1, 2)
            if levels == len(MS_SSIM_WEIGHTS):
                from pytorch_msssim import ms_ssim as _reference

                values.append(_reference(x, y, data_range=255, size_average=False))
            else:
                values.append(_ms_ssim_torch(x, y, _renormalised(MS_SSIM_WEIGHTS[:levels])))
    return float(torch.cat(values).double().mean()), levels


def _renormalised(weights: tuple[float, ...]) -> tuple[float, ...]:
    total = sum(weights)
    return tuple(w / total for w in weights)


def _ms_ssim_torch(x: Any, y: Any, weights: tuple[float, ...]) -> Any:
    """Per-image MS-SSIM of (N, 3, H, W) float tensors over ``len(weights)`` scales.

    The arithmetic follows ``pytorch_msssim.ms_ssim`` step by step (valid separable Gaussian
    window, ``relu`` on the contrast-structure terms, 2x2 average pooling with odd-size padding),
    without its 5-scale size assertion; ``weights`` are used as given.
    """
    import torch
    import torch.nn.functional as F

    coords = torch.arange(_WIN_SIZE, dtype=torch.float) - _WIN_SIZE // 2
    g = torch.exp(-(coords ** 2) / (2 * _WIN_SIGMA ** 2))
    win = (g / g.sum()).reshape(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)

    def blur(t: Any) -> Any:    # separable valid Gaussian filter, per channel
        t = F.conv2d(t, win.transpose(2, 3), groups=t.shape[1])
        return F.conv2d(t, win, groups=t.shape[1])

    c1, c2 = (_K1 * 255) ** 2, (_K2 * 255) ** 2
    w = x.new_tensor(weights)
    factors = []
    for level in range(len(weights)):
        mu1, mu2 = blur(x), blur(y)
        mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
        s11, s22, s12 = blur(x * x) - mu1_sq, blur(y * y) - mu2_sq, blur(x * y) - mu1_mu2
        cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
        if level < len(weights) - 1:
            factors.append(torch.relu(cs_map.flatten(2).mean(-1)))       # (N, C)
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, kernel_size=2, padding=pad), F.avg_pool2d(y, kernel_size=2, padding=pad)
        else:
            ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
            factors.append(torch.relu(ssim_map.flatten(2).mean(-1)))
    stacked = torch.stack(factors)                                        # (L, N, C)
    return torch.prod(stacked ** w.view(-1, 1, 1), dim=0).mean(1)         # (N,)


def msssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - value)`` (``inf`` at 1, ``nan`` for nan)."""
    if math.isnan(value):
        return math.nan
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)
