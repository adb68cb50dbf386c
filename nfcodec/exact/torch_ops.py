"""The torch backend of the exact arithmetic (CPU or CUDA); same results as :mod:`.numpy_ops`.

Only operations that are exact or correctly rounded elementwise are used: GEMMs on exact
integers (float64, or float32 when a bound proves it exact; TF32 is never allowed), one
multiply and one add in float64 as separate kernels (no ``addcmul``, no fused multiply-add),
integer masks and table gathers.  Convolutions are sums of GEMMs (:mod:`.convgeom`) rather than
``conv2d``, whose library algorithms (Winograd, FFT, TF32) are not exact.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch

from . import tables as T
from .convgeom import conv_geometry, padded_shape
from .layers import Layer

__all__ = ["TorchOps"]

_TILE_VALUES = 1 << 17     # as numpy: tiles that stay in cache (measured fastest)
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
        prev_tf32, prev_precision = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
        torch.backends.cuda.matmul.allow_tf32 = False    # TF32 / bf16 round the operands: never exact
        torch.set_float32_matmul_precision("highest")
        try:
            with torch.inference_mode():
                yield self
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev_tf32
            torch.set_float32_matmul_precision(prev_precision)
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

    def _activate(self, layer: Layer, acc: torch.Tensor, beta: torch.Tensor | None = None) -> torch.Tensor:
        v = acc * layer.alpha              # one rounding
        v = v + (self._beta(layer) if beta is None else beta)   # one rounding (separate kernel: never fused)
        if layer.act == "sine":
            k = torch.bitwise_and(v.view(torch.int64), T.SIN_SIZE - 1)
            return torch.take(self._table("sin"), k)
        if layer.act == "gelu":
            v = torch.clamp(v, T.ROUND_MAGIC, T.ROUND_MAGIC + (2 * T.GELU_HALF - 1))
            k = torch.bitwise_and(v.view(torch.int64), 2 * T.GELU_HALF - 1)
            return torch.take(self._table("gelu"), k)
        v = torch.round(torch.clamp(v, 0, 255))   # round half to even
        return v.to(torch.uint8)

    def dense(self, layer: Layer, x: torch.Tensor) -> torch.Tensor:
        """``(n, in)`` -> ``(n, out)`` (pixel-major, as the numpy backend)."""
        q = self._weights(layer, layer.f32_exact())
        acc = (x.to(q.dtype) @ q.T).to(torch.float64)
        return self._activate(layer, acc, self._beta(layer).reshape(1, -1))

    def dense_rows(self, n: int, width: int, fn: Callable[[int, int], torch.Tensor], out_cols: int,
                   dtype=np.uint8) -> np.ndarray:
        out = np.empty((n, out_cols), dtype)
        tile = max(256, _TILE_VALUES // max(1, width))
        for r0 in range(0, n, tile):
            r1 = min(n, r0 + tile)
            out[r0:r1] = self.to_numpy(fn(r0, r1))
        return out

    def conv(self, layer: Layer, x: torch.Tensor, factor: int = 1, *, crop: tuple[int, int] | None = None,
             next_kernel: int = 0) -> torch.Tensor | np.ndarray:
        """As :meth:`NumpyOps.conv <nfcodec.exact.numpy_ops.NumpyOps.conv>` (``next_kernel`` is a hint
        this backend ignores: it pads each input itself)."""
        c, h, w = x.shape
        o, f = layer.out_features, factor
        g = conv_geometry(c, o, h, w, layer.kernel, crop, band_values=_CONV_TILE_VALUES)
        x_max = max(float(x.max()), -float(x.min())) if x.numel() else 0.0
        dtype = torch.float32 if layer.f32_exact(x_max) else torch.float64
        xp = torch.zeros(padded_shape(c, h, w, layer.kernel), dtype=dtype, device=self.device)
        xp[:, g.pad:g.pad + h, g.pad:g.pad + w] = x
        flat = xp.reshape(c, -1)
        q = self._weights(layer, dtype == torch.float32).reshape(o, c, g.kernel * g.kernel)
        taps = [q[:, :, t].contiguous() for t in range(g.kernel * g.kernel)]
        oc = o // (f * f)
        if crop is not None:
            result = np.empty((g.rows, g.cols, 3), np.uint8)
        else:
            result = torch.empty((oc, h * f, w * f), dtype=torch.float64, device=self.device)
        for r0, r1 in g.bands():
            n, base = (r1 - r0) * g.wp, r0 * g.wp
            acc = taps[0] @ flat[:, base + g.offsets[0]:base + g.offsets[0] + n]
            for t in range(1, len(taps)):
                acc += taps[t] @ flat[:, base + g.offsets[t]:base + g.offsets[t] + n]
            y = self._activate(layer, acc.to(torch.float64)).reshape(-1, r1 - r0, g.wp)[:, :, :g.cols]
            if crop is not None:
                result[r0:r1] = self.to_numpy(y.permute(1, 2, 0))
                continue
            y = y.reshape(oc, f, f, r1 - r0, g.cols)
            result[:, r0 * f:r1 * f, :].view(oc, r1 - r0, f, g.cols, f).copy_(y.permute(0, 3, 1, 4, 2))
        return result
