"""The numpy backend of the exact arithmetic (the reference decoder: no torch).

Work is split into row tiles that run on a small thread pool (numpy releases the GIL in its
kernels), with numpy's BLAS held to one thread inside the pool so the two levels of
parallelism do not fight.  Tiles and threads change only the speed: every step is exact or
elementwise (:mod:`.layers`), so the pixels are the same for any tile size or thread count.

GEMMs run in float32 when the layer's bound proves every partial sum stays below 2**24 (for a
convolution the bound uses the actual largest input of the frame), otherwise in float64
(exact below 2**53, which the file guarantees).  A BLAS GEMM only multiplies and adds its
operands, so any blocking, SIMD width or FMA use gives the exact integer.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np

from . import tables as T
from .convgeom import conv_geometry, padded_shape
from .layers import Layer

__all__ = ["NumpyOps"]

_TILE_VALUES = 1 << 17       # activations per tile (rows x width): ~1 MiB of float64


def _workers() -> int:
    """Worker threads: ``NFCODEC_THREADS`` if set, else the CPU count (at most 8)."""
    env = os.environ.get("NFCODEC_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return min(64, int(env))
    return max(1, min(8, os.cpu_count() or 1))


@functools.lru_cache(maxsize=1)
def _controller():
    """threadpoolctl's view of the loaded BLAS libraries (inspected once: ~1 ms each time)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency; speed only, never results
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Hold numpy's BLAS to one thread while our own threads run tiles (threadpoolctl)."""
    controller = _controller()
    if controller is None:  # pragma: no cover
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


class NumpyOps:
    """Primitives of the exact arithmetic on numpy arrays (the programs of :mod:`nfcodec.archs` run on them)."""

    name = "numpy"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or _workers()
        self._pool: ThreadPoolExecutor | None = None
        self._active = False
        self._local = threading.local()

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def session(self) -> Iterator["NumpyOps"]:
        """Thread pool and BLAS settings for one decode (frames rendered inside share them;
        re-entrant: a nested session reuses the outer one)."""
        if self.workers == 1 or self._active:
            yield self
            return
        self._active = True
        try:
            with _single_threaded_blas(), ThreadPoolExecutor(self.workers) as pool:
                self._pool = pool
                yield self
        finally:
            self._pool, self._active = None, False

    def _map(self, fn: Callable[[int, int], None], n: int, tile: int) -> None:
        spans = [(r0, min(n, r0 + tile)) for r0 in range(0, n, tile)]
        if self._pool is None or len(spans) == 1:
            for r0, r1 in spans:
                fn(r0, r1)
        else:
            for f in [self._pool.submit(fn, r0, r1) for r0, r1 in spans]:
                f.result()

    @staticmethod
    def asarray(a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    @staticmethod
    def to_numpy(a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    # ------------------------------------------------------------------ the arithmetic
    @staticmethod
    def _activate(layer: Layer, acc: np.ndarray, beta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The affine step and the activation, in place on the float64 ``acc`` (``beta`` shaped to
        broadcast: a row for dense layers, a column for convolutions).  A ``sine``/``gelu`` result
        is gathered into ``out`` when given (float32 holds every GELU value exactly)."""
        np.multiply(acc, layer.alpha, out=acc)
        acc += beta
        if layer.act == "out8":
            np.clip(acc, 0, 255, out=acc)
            np.rint(acc, out=acc)
            return acc.astype(np.uint8)
        if layer.act == "sine":
            k = acc.view(np.int64)              # v - M = rne(phase): its low 16 bits index SIN
            k &= T.SIN_SIZE - 1
            table = T.sine_table_f64()
        else:
            np.clip(acc, T.ROUND_MAGIC, T.ROUND_MAGIC + (2 * T.GELU_HALF - 1), out=acc)
            k = acc.view(np.int64)
            k &= 2 * T.GELU_HALF - 1
            table = T.gelu_table_f64() if out is None or out.dtype == np.float64 else T.gelu_table_f32()
        if out is None:
            return np.take(table, k)
        return np.take(table, k, out=out, mode="clip")      # indices are in range: 'clip' skips buffering

    def _scratch(self, slot: int, shape: tuple[int, int], dtype=np.float64) -> np.ndarray:
        """Thread-local work buffer ``slot`` viewed as ``shape`` (no allocation per tile: large
        temporaries would each cost an mmap and page faults).  Slots 0 and 1 hold float64
        activations; 2 and 3 the float32 copies of the float32 GEMM path."""
        bufs = self._local.__dict__.setdefault("bufs", {})
        size = shape[0] * shape[1]
        buf = bufs.get(slot)
        if buf is None or buf.size < size:
            buf = bufs[slot] = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def _dense_gemm(self, layer: Layer, x: np.ndarray, acc: np.ndarray) -> None:
        """Exact ``acc = x @ q.T`` into a float64 buffer (the method only changes the speed)."""
        q = layer.q
        if q.shape[1] <= 4:                      # coordinates: a few exact products and sums
            qt = layer.cached("npT", lambda: np.ascontiguousarray(q.T))
            np.multiply(x[:, :1], qt[:1], out=acc)
            for j in range(1, q.shape[1]):
                acc += x[:, j:j + 1] * qt[j:j + 1]
            return
        if layer.f32_exact():
            q32 = layer.cached("np32T", lambda: np.ascontiguousarray(q.T, dtype=np.float32))
            x32 = self._scratch(2, x.shape, np.float32)
            x32[...] = x
            acc32 = self._scratch(3, acc.shape, np.float32)
            np.matmul(x32, q32, out=acc32)
            acc[...] = acc32
            return
        np.matmul(x.astype(np.float64, copy=False), layer.cached("npT", lambda: np.ascontiguousarray(q.T)), out=acc)

    def dense(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        """``(n, in)`` integer activations -> ``(n, out)`` (float64 integers, or uint8 for ``out8``).

        Dense layers are pixel-major (the inner loops run over a layer's units); convolutions are
        channel-major.  The result of a ``sine``/``gelu`` layer lives in a scratch buffer of the
        calling thread, valid until the thread's next-but-one ``dense`` call (enough for a chain)."""
        bufs = self._local.__dict__.get("bufs", {})
        xi = next((i for i in (0, 1) if i in bufs and np.may_share_memory(x, bufs[i])), None)
        ai = 1 if xi == 0 else 0
        acc = self._scratch(ai, (x.shape[0], layer.out_features))
        self._dense_gemm(layer, x, acc)
        beta = layer.cached("beta_row", lambda: np.ascontiguousarray(layer.beta.reshape(1, -1)))
        out = None if layer.act == "out8" else self._scratch(1 - ai, acc.shape)
        return self._activate(layer, acc, beta, out)

    def dense_rows(self, n: int, width: int, fn: Callable[[int, int], np.ndarray], out_cols: int,
                   dtype=np.uint8) -> np.ndarray:
        """Run ``fn(r0, r1) -> (r1 - r0, out_cols)`` over row tiles of ``[0, n)`` into ``(n, out_cols)``."""
        out = np.empty((n, out_cols), dtype)
        tile = max(64, _TILE_VALUES // max(1, width))

        def run(r0: int, r1: int) -> None:
            out[r0:r1] = fn(r0, r1)

        self._map(run, n, tile)
        return out

    def conv(self, layer: Layer, x: np.ndarray, factor: int = 1, *, crop: tuple[int, int] | None = None,
             next_kernel: int = 0) -> np.ndarray:
        """Zero-padded ``k x k`` convolution of ``(C, H, W)`` integer activations, the activation,
        then pixel shuffle by ``factor``: ``(out / f^2, H f, W f)``.  ``out8`` layers return the
        ``(rows, cols, 3)`` uint8 window ``crop`` of the frame instead (see :mod:`.convgeom`).

        ``x`` may also be a :class:`Padded` map (what this method returns when ``next_kernel`` is
        set: the output already laid out, zero-padded, for the next convolution, in float32 --
        GELU outputs are integers below 2**16 -- with its largest magnitude recorded)."""
        padded = x if isinstance(x, Padded) else None
        c, h, w = padded.shape if padded is not None else x.shape
        o, f = layer.out_features, factor
        g = conv_geometry(c, o, h, w, layer.kernel, crop)
        if padded is not None and padded.kernel == layer.kernel:
            xp, x_max = padded.array, padded.max_abs
        else:
            src = padded.interior() if padded is not None else x
            xp = np.zeros(padded_shape(c, h, w, layer.kernel), np.float32)
            xp[:, g.pad:g.pad + h, g.pad:g.pad + w] = src
            x_max = max(float(xp.max(initial=0)), -float(xp.min(initial=0)))
        f32 = layer.f32_exact(x_max)
        dtype = np.float32 if f32 else np.float64
        flat = xp.reshape(c, -1).astype(dtype, copy=False)     # a copy only on the float64 path
        taps = layer.cached(f"taps:{np.dtype(dtype).name}", lambda: [
            np.ascontiguousarray(layer.q.reshape(o, c, g.kernel * g.kernel)[:, :, t], dtype=dtype)
            for t in range(g.kernel * g.kernel)])
        oc, oh, ow = o // (f * f), h * f, w * f
        if crop is not None:
            result = np.empty((g.rows, g.cols, 3), np.uint8)
            view = result
        elif next_kernel:
            out = Padded(np.zeros(padded_shape(oc, oh, ow, next_kernel), np.float32), next_kernel, (oc, oh, ow))
            view = out.interior()
        else:
            view = out = np.empty((oc, oh, ow), np.float32)
        band_max: list[float] = []

        def run(r0: int, r1: int) -> None:
            n = (r1 - r0) * g.wp
            acc = self._scratch(0, (o, n))
            part = acc if not f32 else self._scratch(3, (o, n), np.float32)
            tmp = self._scratch(1 if not f32 else 2, (o, n), dtype)
            base = r0 * g.wp
            for t, off in enumerate(g.offsets):
                src = flat[:, base + off:base + off + n]
                if t == 0:
                    np.matmul(taps[0], src, out=part)
                else:
                    np.matmul(taps[t], src, out=tmp)
                    part += tmp
            if f32:
                acc[...] = part
            act = None if crop is not None else self._scratch(4, (o, n), np.float32)
            y = self._activate(layer, acc, layer.beta, act).reshape(-1, r1 - r0, g.wp)[:, :, :g.cols]
            if crop is not None:
                view[r0:r1] = y.transpose(1, 2, 0)
                return
            band_max.append(max(float(y.max(initial=0)), -float(y.min(initial=0))))
            y = y.reshape(oc, f, f, r1 - r0, g.cols)           # (c, a, b, y, x)
            # pixel shuffle: out[c, f y + a, f x + b] = y[c, a, b, y, x], one strided copy
            view[:, r0 * f:r1 * f, :].reshape(oc, r1 - r0, f, g.cols, f)[...] = y.transpose(0, 3, 1, 4, 2)

        self._map(run, g.rows, g.band)
        if crop is None and isinstance(out, Padded):
            out.max_abs = max(band_max, default=0.0)
        return result if crop is not None else out


class Padded:
    """A feature map stored zero-padded for a ``kernel x kernel`` convolution (``convgeom``)."""

    def __init__(self, array: np.ndarray, kernel: int, shape: tuple[int, int, int], max_abs: float = 0.0) -> None:
        self.array, self.kernel, self.shape, self.max_abs = array, kernel, shape, max_abs

    def interior(self) -> np.ndarray:
        c, h, w = self.shape
        p = self.kernel // 2
        return self.array[:, p:p + h, p:p + w]
