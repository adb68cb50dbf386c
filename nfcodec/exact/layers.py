"""Layers of the exact decoding arithmetic: integer weights, one affine step, a pinned activation.

Every layer of every architecture is computed the same way (``docs/format.md``, section 6):

1. **Exact integer dot product.**  ``acc[u] = sum_j Q[u, j] * X[j]`` with ``Q`` the weight
   tensor's integer symbols and ``X`` the integer input activations.  The file is valid only if
   ``max_u sum_j |Q[u, j]| * x_max < 2**53`` (``x_max``: the largest possible |X| of the input
   format), checked by :func:`make_layer`; so ``acc`` is exact in binary64 whatever the order of
   summation, and float64 BLAS (or float32 BLAS, under ``2**24``) computes it exactly.
2. **One binary64 affine step**, ``v = fl(fl(acc * alpha) + beta[u])``: one multiply, then one
   add, each rounded to nearest even (never fused).  ``alpha`` and ``beta`` are computed once per
   layer from the file by the binary64 formulas below.
3. **The activation** maps ``v`` to the next integer activations (or to 8-bit samples).  For
   ``sine`` and ``gelu``, ``beta`` contains ``M = 1.5 * 2^52``, so ``v`` is an integer in
   ``[2^52, 2^53)``: ``v - M`` is the pre-activation rounded to a table index (nearest, ties to
   even), and its low bits are the low bits of ``v``'s significand.

   ========  =========================================================  ===========================
   act       alpha, beta[u]                                             output
   ========  =========================================================  ===========================
   ``sine``  ``fl(fl(w0 * s) * TURN) * 2^(16 - F_in)``,                  ``SIN[(v - M) mod 2^16]``
             ``fl(fl(fl(w0 * b_u) * TURN) * 2^16 + M)``
   ``gelu``  ``s * 2^(11 - F_in)``, ``fl(b_u * 2^11 + (M + 2^16))``       ``GELU[clamp(v - M,
                                                                        0, 2^17 - 1)]``
   ``out8``  ``s * 127.5 * 2^-F_in``, ``fl(fl(b_u * 127.5) + 127.5)``    ``rhe(clamp(v, 0, 255))``
   ========  =========================================================  ===========================

   ``s`` is the weight tensor's quantization step and ``b_u = qb_u * s_b`` the bias value (both
   exact binary64), ``w0`` the layer's frequency factor (binary32 from ARCH), ``F_in`` the
   fractional bits of the input activations (20 for SIREN coordinates, 15 after a sine or for
   NeRV's positional encoding, 11 after a GELU).  Products written without ``fl`` are exact.

Nothing here imports torch: the numpy and torch backends (:mod:`.numpy_ops`, :mod:`.torch_ops`)
both run these layers and agree to the bit.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..bitstream import FormatError
from ..quant import STEP_TABLE
from . import tables as T

__all__ = ["QTensor", "Layer", "make_layer", "ACC_LIMIT", "F32_LIMIT", "ACTIVATIONS"]

#: Exactness budget of the accumulator in binary64 (a file exceeding it is invalid).
ACC_LIMIT = 2**53
#: Below this, float32 GEMM is exact too (the backends use it when a bound proves it).
F32_LIMIT = 2**24
#: Fractional bits of each activation's output and the largest |output| it can produce.
ACTIVATIONS = {"sine": (T.SIN_FRAC, 1 << T.SIN_FRAC), "gelu": (T.GELU_FRAC, None), "out8": (0, 255)}


@dataclass(frozen=True, eq=False)
class QTensor:
    """One parameter tensor as the decoder holds it: integer symbols ``q`` times ``STEP_TABLE[step]``.

    Attributes:
        q: int64 array in the parameter's shape (pruned positions are 0).
        step: index into :data:`nfcodec.quant.STEP_TABLE`.
    """

    q: np.ndarray
    step: int

    @property
    def scale(self) -> float:
        return STEP_TABLE[self.step]

    def values(self) -> np.ndarray:
        """The exact binary64 values ``q * step`` (|q| < 2**31, a 4-bit step mantissa: exact)."""
        return self.q.astype(np.float64) * self.scale


@dataclass(frozen=True, eq=False)
class Layer:
    """One dense or convolution layer, ready to run.

    Attributes:
        act: ``sine``, ``gelu`` or ``out8``.
        q: the weight symbols as float64 (exact integers), ``(out, fan_in)``; a convolution's
            fan-in is ``(in_channel, dy, dx)`` in C order.
        alpha: the scalar of the affine step.
        beta: ``(out, 1)`` float64, the per-output constant of the affine step (a column: the
            backends hold activations feature-major, ``(features, pixels)``).
        x_max: the largest |input activation| the layer can see (from the input format).
        row_l1: ``(out,)`` float64, ``sum_j |q[u, j]|`` (exact).
        kernel: convolution kernel size (square, odd); 0 for a dense layer.
        out_frac: fractional bits of the output activations.
    """

    act: str
    q: np.ndarray
    alpha: float
    beta: np.ndarray
    x_max: int
    row_l1: np.ndarray
    kernel: int = 0
    out_frac: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def out_features(self) -> int:
        return self.q.shape[0]

    @property
    def bound(self) -> float:
        """Largest possible |acc| (exact in float64 below 2**53)."""
        return float(self.row_l1.max(initial=0.0)) * self.x_max

    def f32_exact(self, x_max: Optional[float] = None) -> bool:
        """Whether float32 GEMM is exact for inputs bounded by ``x_max`` (default: the static bound)."""
        bound = self.bound if x_max is None else float(self.row_l1.max(initial=0.0)) * x_max
        return bound < F32_LIMIT

    def cached(self, key: str, make):  # per-backend derived arrays (float32 copy, device tensors)
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def _sine_constants(s: float, b: np.ndarray, w0: float, f_in: int) -> tuple[float, np.ndarray]:
    alpha = math.ldexp((w0 * s) * T.TURN, T.SIN_BITS - f_in)
    beta = np.ldexp((w0 * b) * T.TURN, T.SIN_BITS) + T.ROUND_MAGIC
    return alpha, beta


def _gelu_constants(s: float, b: np.ndarray, w0: float, f_in: int) -> tuple[float, np.ndarray]:
    alpha = math.ldexp(s, T.GELU_IN_FRAC - f_in)
    beta = np.ldexp(b, T.GELU_IN_FRAC) + (T.ROUND_MAGIC + T.GELU_HALF)
    return alpha, beta


def _out8_constants(s: float, b: np.ndarray, w0: float, f_in: int) -> tuple[float, np.ndarray]:
    alpha = math.ldexp(s * 127.5, -f_in)
    beta = (b * 127.5) + 127.5
    return alpha, beta


_CONSTANTS = {"sine": _sine_constants, "gelu": _gelu_constants, "out8": _out8_constants}


def make_layer(act: str, weight: QTensor, bias: QTensor, *, f_in: int, x_max: int, kernel: int = 0,
               w0: float = 0.0, where: str = "layer") -> Layer:
    """Build a :class:`Layer` and check the file's limits for it.

    Args:
        act: ``sine``, ``gelu`` or ``out8``.
        weight: ``(out, in)`` or ``(out, in, k, k)`` symbols and step.
        bias: ``(out,)`` symbols and step.
        f_in: fractional bits of the input activations.
        x_max: largest |input activation|.
        kernel: conv kernel size, 0 for dense.
        w0: frequency factor (``sine`` only).
        where: names the layer in error messages.

    Raises:
        FormatError: the accumulator bound reaches ``2**53``, or a sine phase could reach
            ``2**39`` bins (weights far outside anything an encoder produces).
    """
    out = weight.q.shape[0]
    q = weight.q.reshape(out, -1).astype(np.float64)
    row_l1 = np.abs(q).sum(axis=1)
    bound = float(row_l1.max(initial=0.0)) * x_max
    if bound >= ACC_LIMIT:
        raise FormatError(f"{where}: accumulator bound 2^{math.log2(bound):.2f} reaches 2^53 "
                          "(weights too large for exact decoding)")
    alpha, beta = _CONSTANTS[act](weight.scale, bias.values(), float(w0), f_in)
    if act == "sine":
        phase = bound * abs(alpha) + float(np.abs(beta - T.ROUND_MAGIC).max(initial=0.0))
        if not phase * (1 + 2**-20) + 1 < T.MAX_INDEX:
            raise FormatError(f"{where}: sine phase bound {phase:.3g} bins reaches 2^50 "
                              "(frequencies too large for exact decoding)")
    frac, _ = ACTIVATIONS[act]
    return Layer(act, q, float(alpha), np.ascontiguousarray(beta, dtype=np.float64).reshape(-1, 1), int(x_max),
                 row_l1, kernel, frac)


@functools.lru_cache(maxsize=None)
def activation_max(act: str) -> int:
    """Largest |output| of an activation (the next layer's ``x_max``)."""
    if act == "gelu":
        g = T.gelu_table()
        return int(max(abs(int(g.min())), int(g.max())))
    return ACTIVATIONS[act][1]
