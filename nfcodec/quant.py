"""Scalar quantization of network parameters onto a fixed table of steps.

The file never carries a float step: each tensor sends an index into :data:`STEP_TABLE`.
Entry ``i`` is ``(16 - i % 8) * 2**-(i // 8 + 4)``, so steps run from 1.0 down to
``9 * 2**-27`` in ratios of about 2**(1/8), and every entry is exact in float32.  A weight
is ``symbol * STEP_TABLE[i]``: with |symbol| < 2**20 that product is exact in float32 too,
so dequantization is bit-identical on every IEEE machine.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["STEP_TABLE", "N_STEPS", "step_value", "step_index_for", "quantize", "dequantize"]

N_STEPS = 192


def step_value(index: int) -> float:
    """Return the quantization step of table entry ``index`` (0 <= index < N_STEPS)."""
    if not 0 <= index < N_STEPS:
        raise ValueError(f"quantization step index {index} outside [0, {N_STEPS - 1}]")
    return math.ldexp(16 - index % 8, -(index // 8) - 4)


STEP_TABLE: tuple[float, ...] = tuple(step_value(i) for i in range(N_STEPS))
_LOG_STEPS = np.log2(np.asarray(STEP_TABLE))


def step_index_for(max_abs: float, bits: int) -> int:
    """Pick the table step that spreads ``[-max_abs, max_abs]`` over about ``2**bits`` levels.

    Args:
        max_abs: largest magnitude in the tensor.
        bits: quantization bit depth (2..16); the symbols then fit in ``bits`` signed bits.

    Returns:
        The index of the table step nearest (in log scale) to ``max_abs / (2**(bits-1) - 1)``,
        never coarser than needed to keep |symbol| <= 2**(bits-1) - 1 by more than one table step.
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"bits={bits} outside [2, 16]")
    if not max_abs > 0 or not math.isfinite(max_abs):
        return N_STEPS - 1
    target = math.log2(max_abs / (2 ** (bits - 1) - 1))
    return int(np.argmin(np.abs(_LOG_STEPS - target)))


def quantize(values: np.ndarray, index: int) -> np.ndarray:
    """Round ``values`` to integer multiples of ``STEP_TABLE[index]`` (int32 symbols)."""
    q = np.rint(np.asarray(values, dtype=np.float64) / STEP_TABLE[index])
    if q.size and np.abs(q).max() >= 2**20:
        raise ValueError(f"step index {index} too fine for values up to {np.abs(values).max():.4g}")
    return q.astype(np.int32)


def dequantize(symbols: np.ndarray, index: int) -> np.ndarray:
    """Map int symbols back to float32 values (exact: see the module docstring)."""
    return (np.asarray(symbols, dtype=np.float32) * np.float32(STEP_TABLE[index])).astype(np.float32)
