"""Distortion and rate measures on 8-bit RGB."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["mse", "psnr", "bpp"]


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
