"""The torch backend of the exact arithmetic (CPU or CUDA); same results as :mod:`.numpy_ops`.

Only operations that are exact or correctly rounded elementwise are used: GEMMs on exact
integers (float64, or float32 when a bound proves it exact; TF32 is never allowed), one
multiply and one add in float64 as separate kernels (no ``addcmul``, no fused multiply-add),
floor/truncation, integer masks and table gathers.  Convolutions are ``unfold`` + GEMM rather
than ``conv2d``, whose library algorithms (Winograd, FFT) are not exact.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from . import tables as T
from .layers import Layer

__all__ = ["TorchOps"]

_TILE_VALUES = 1 << 21
_CONV_TILE_VALUES = 1 << 22


class TorchOps:
    """Primitives of the exact arithmetic on torch tensors of one device."""

    name = "torch"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self._key = str(self.device)
        self._active = False

    @contextlib.contextmanager
    def session(self) -> Iterator["TorchOps"]:
        if self._active:
            yield self
            return
        self._active = True
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False    # TF32 rounds the operands: never exact
        try:
            with torch.inference_mode():
                yield self
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
            self._active = False

    def _table(self, name: str) -> torch.Tensor:
        attr = f"_t_{name}"
        if not hasattr(self, attr):
            src = T.sine_table_f64() if name == "sin" else T.gelu_table_f64()
            setattr(self, attr, torch.from_numpy(np.array(src)).to(self.device))
        return getattr(self, attr)

    def asarray(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    @staticmethod
    def to_numpy(a: torch.Tensor) -> np.ndarray:
        return a.cpu().numpy()

    def _weights(self, layer: Layer, f32: bool) -> torch.Tensor:
        key = f"torch:{self._key}:{'f32' if f32 else 'f64'}"
        return layer.cached(key, lambda: torch.from_numpy(layer.q).to(self.device,
                                                                         torch.float32 if f32 else torch.float64))

    def _beta(self, layer: Layer) -> torch.Tensor:
        return layer.cached(f"torch:{self._key}:beta", lambda: torch.from_numpy(layer.beta).to(self.device))

    def _gemm(self, layer: Layer, x: torch.Tensor, x_max: float | None = None) -> torch.Tensor:
        f32 = layer.f32_exact(x_max)
        q = self._weights(layer, f32)
        return (q @ x.to(q.dtype)).to(torch.float64)

    def _activate(self, layer: Layer, acc: torch.Tensor) -> torch.Tensor:
        v = acc * layer.alpha              # one rounding
        v = v + self._beta(layer)          # one rounding (a separate kernel: never fused)
        if layer.act == "sine":
            k = torch.bitwise_and(v.view(torch.int64), T.SIN_SIZE - 1)
            return self._table("sin")[k]
        if layer.act == "gelu":
            v = torch.clamp(v, T.ROUND_MAGIC, T.ROUND_MAGIC + (2 * T.GELU_HALF - 1))
            k = torch.bitwise_and(v.view(torch.int64), 2 * T.GELU_HALF - 1)
            return self._table("gelu")[k]
        v = torch.round(torch.clamp(v, 0, 255))   # round half to even
        return v.to(torch.uint8)

    def dense(self, layer: Layer, x: torch.Tensor) -> torch.Tensor:
        return self._activate(layer, self._gemm(layer, x))

    def dense_rows(self, n: int, width: int, fn: Callable[[int, int], torch.Tensor], out_cols: int,
                   dtype=np.uint8) -> np.ndarray:
        out = np.empty((n, out_cols), dtype)
        tile = max(256, _TILE_VALUES // max(1, width))
        for r0 in range(0, n, tile):
            r1 = min(n, r0 + tile)
            out[r0:r1] = self.to_numpy(fn(r0, r1)).T
        return out

    def conv(self, layer: Layer, x: torch.Tensor, factor: int = 1, *, crop: tuple[int, int] | None = None
             ) -> torch.Tensor | np.ndarray:
        c, h, w = x.shape
        k, p = layer.kernel, layer.kernel // 2
        x_max = float(x.abs().max()) if x.numel() else 0.0
        dtype = torch.float32 if layer.f32_exact(x_max) else torch.float64
        xp = F.pad(x.to(dtype)[None], (p, p, p, p))
        o = layer.out_features
        if crop is not None:
            rows, cols = crop
            result = np.empty((rows, cols, 3), np.uint8)
        else:
            rows, cols = h, w
            result = torch.empty((o // (factor * factor), h * factor, w * factor), dtype=torch.float64,
                                 device=self.device)
        tile = max(1, _CONV_TILE_VALUES // max(1, c * k * k * cols))
        for r0 in range(0, rows, tile):
            r1 = min(rows, r0 + tile)
            col = F.unfold(xp[:, :, r0:r1 + 2 * p, :cols + 2 * p], k)[0]     # (c k k, (r1-r0) cols)
            y = self._activate(layer, self._gemm(layer, col, x_max))
            if crop is not None:
                result[r0:r1] = self.to_numpy(y.reshape(3, r1 - r0, cols).permute(1, 2, 0))
                continue
            f = factor
            y = y.reshape(o // (f * f), f, f, r1 - r0, cols)
            result[:, r0 * f:r1 * f, :] = y.permute(0, 3, 1, 4, 2).reshape(o // (f * f), (r1 - r0) * f, cols * f)
        return result
