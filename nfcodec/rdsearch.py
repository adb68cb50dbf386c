"""Rate-distortion search of the per-tensor quantization steps (encoder only).

After a fit, each parameter tensor gets one step index into :data:`nfcodec.quant.STEP_TABLE`.
The bit-depth rule (:func:`nfcodec.fit.choose_steps`) gives every tensor the same number of
levels; this module moves the steps tensor by tensor, measuring

* **rate** with the real entropy coder: the bytes of each tensor's record as
  :func:`~nfcodec.bitstream.encode_tensors` writes it (with the model it would choose), cached
  per (tensor, step) -- records are independent, so the payload is their sum plus a varint;
* **distortion** as the mean squared error, on the 8-bit scale, of what the decoder would
  render from the quantized weights, on a fixed evaluation set (a deterministic subset of
  pixels or frames, see :class:`Evaluator`).

Two searches share the moves (one tensor's step ``move`` table entries coarser or finer,
about ``move / 8`` bit per weight):

* :func:`search_lagrangian` minimises ``bpp + lam * mse`` by coordinate descent;
* :func:`search_budget` minimises ``mse`` under a byte budget: while over budget it coarsens
  the tensor with the smallest distortion increase per byte saved, then (under budget) it
  refines the tensor with the largest distortion drop per byte spent while it still fits.

Tensors with fewer than :data:`MIN_SEARCH_VALUES` values (biases) keep a fine step: they cost
a few bytes and move the output a lot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .bitstream.fields import write_uvarint

__all__ = ["Evaluator", "QuantProblem", "search_lagrangian", "search_budget", "MIN_SEARCH_VALUES"]

MIN_SEARCH_VALUES = 256     # smaller tensors are not searched (kept at their bit-depth step)
EVAL_PIXELS = 1 << 16       # pixels of an image the distortion is measured on
EVAL_FRAMES = 4             # frames of a video the distortion is measured on


class Evaluator:
    """Distortion of a network on a fixed, deterministic subset of the signal (8-bit MSE).

    Rendering is the decoder's exact arithmetic (an :mod:`nfcodec.exact` program on the
    ``backend``), so on the full set the MSE equals the decoded file's.  Images of a pixelwise
    architecture (SIREN): every ``stride``-th pixel, at most :data:`EVAL_PIXELS`.  Videos: up to
    :data:`EVAL_FRAMES` evenly spaced frames, on a pixel subset (pixelwise) or whole (NeRV).
    """

    def __init__(self, arch, record, header, frames: np.ndarray, *, full: bool = False,
                 backend: str = "numpy") -> None:
        from .exact import get_ops

        self.arch, self.record, self.header = arch, record, header
        self.ops = get_ops(backend)
        T, H, W = frames.shape[:3]
        if T == 1:
            self.ks = [0]
        else:
            n = T if full else min(T, EVAL_FRAMES)
            self.ks = sorted({int(round(i * (T - 1) / max(1, n - 1))) for i in range(n)})
        self.idx: Optional[np.ndarray] = None
        if arch.pixelwise and not full:
            per = min(H * W, max(1, EVAL_PIXELS // len(self.ks)))
            self.idx = np.arange(0, H * W, max(1, (H * W) // per), dtype=np.int64)
        flat = [frames[k].reshape(-1, 3) for k in self.ks]
        self.targets = [f if self.idx is None else f[self.idx] for f in flat]

    def mse(self, program) -> float:
        """Mean squared error (8-bit scale) of ``program``'s decoded output on the evaluation set."""
        total, count = 0.0, 0
        with self.ops.session():
            for k, target in zip(self.ks, self.targets):
                out = program.render_pixels(self.ops, k, self.idx)
                d = out.astype(np.float64) - target
                total += float(np.einsum("ij,ij->", d, d))
                count += d.size
        return total / count


@dataclass
class QuantProblem:
    """A fitted network's payload and what a step choice costs: bytes (cached per tensor) and distortion.

    ``payload`` (:class:`nfcodec.variants.Payload`) has ``n_tensors`` searchable tensors; a
    payload without any (supermask) has a fixed size and a single network.
    """

    payload: Any
    evaluator: Evaluator
    pixels: int                                   # T * H * W, to turn bytes into bpp
    overhead: int                                 # container bytes besides the tensor records
    evals: int = 0

    @property
    def n_tensors(self) -> int:
        return self.payload.n_tensors

    def size(self, i: int) -> int:
        """Number of coded values of tensor ``i`` (survivors for a pruned tensor)."""
        return self.payload.size(i)

    def max_step(self, i: int) -> int:
        """The finest step index that keeps tensor ``i``'s symbols below 2**15."""
        return self.payload.max_step(i)

    def tensor_bytes(self, i: int, step: int) -> int:
        """Bytes of tensor ``i``'s record at ``step`` under the real coder (cached)."""
        return self.payload.tensor_bytes(i, step)

    def total_bytes(self, steps: Sequence[int]) -> int:
        """Whole-file bytes (the exported file is checked against this in the tests)."""
        return (self.overhead + len(write_uvarint(len(steps)))
                + sum(self.tensor_bytes(i, s) for i, s in enumerate(steps)))

    def network(self, steps: Sequence[int]):
        """The exact decoding program of the network quantized with ``steps``."""
        ev = self.evaluator
        return ev.arch.program(ev.record, ev.header, self.payload.qtensors(steps))

    def mse(self, steps: Sequence[int]) -> float:
        """Distortion of the network quantized with ``steps`` (8-bit MSE on the evaluation set)."""
        self.evals += 1
        return self.evaluator.mse(self.network(steps))

    def bpp(self, steps: Sequence[int]) -> float:
        return 8.0 * self.total_bytes(steps) / self.pixels


def _searchable(problem: QuantProblem) -> list[int]:
    return [i for i in range(problem.n_tensors) if problem.size(i) >= MIN_SEARCH_VALUES]


def _clamp(problem: QuantProblem, i: int, s: int) -> int:
    return min(max(s, 0), problem.max_step(i))


def search_lagrangian(problem: QuantProblem, steps: Sequence[int], lam: float, *, move: int = 2,
                      max_passes: int = 4) -> tuple[tuple[int, ...], float]:
    """Minimise ``bpp + lam * mse`` over per-tensor steps by coordinate descent.

    Args:
        problem: the fitted network and its costs.
        steps: the starting step indices (e.g. from the bit depth).
        lam: bits per pixel traded per unit of 8-bit MSE (larger: finer steps, bigger file).
        move: table entries per move (8 entries = 1 bit per weight).
        max_passes: passes over the tensors.

    Returns:
        ``(steps, mse)`` of the best choice found.
    """
    cur = list(steps)
    d = problem.mse(cur)
    j = problem.bpp(cur) + lam * d
    for _ in range(max_passes):
        improved = False
        for i in _searchable(problem):
            for direction in (-1, 1):
                while True:
                    s = _clamp(problem, i, cur[i] + direction * move)
                    if s == cur[i]:
                        break
                    trial = cur.copy()
                    trial[i] = s
                    dt = problem.mse(trial)
                    jt = problem.bpp(trial) + lam * dt
                    if jt >= j:
                        break
                    cur, d, j, improved = trial, dt, jt, True
        if not improved:
            break
    return tuple(cur), d


def search_budget(problem: QuantProblem, steps: Sequence[int], max_bytes: int, *, min_bytes: int = 0,
                  move: int = 2, max_moves: int = 400,
                  accept: Callable[[float], bool] | None = None) -> tuple[tuple[int, ...], float]:
    """Lowest distortion with ``total_bytes <= max_bytes`` (greedy marginal-return moves).

    While over budget, coarsen the searchable tensor whose move adds the least distortion per
    byte saved.  Then, while some refinement still fits, refine the tensor whose move removes
    the most distortion per byte spent (stopping once the file is at least ``min_bytes`` and no
    refinement pays).  ``accept`` (optional) rejects coarsening that breaks a quality floor.

    Returns:
        ``(steps, mse)``; the steps may still be over budget if every tensor is at the
        coarsest step (the caller checks).
    """
    cur = list(steps)
    d = problem.mse(cur)
    idx = _searchable(problem) or list(range(problem.n_tensors))
    moves = 0
    while problem.total_bytes(cur) > max_bytes and moves < max_moves:
        best = _cheapest_coarsening(problem, cur, d, idx, move)
        if best is None:
            break
        cur, d = best
        moves += 1
    if problem.total_bytes(cur) > max_bytes:
        return tuple(cur), d
    while moves < max_moves:
        best = None
        base = problem.total_bytes(cur)
        for i in idx:
            s = _clamp(problem, i, cur[i] + move)
            if s == cur[i]:
                continue
            trial = cur.copy()
            trial[i] = s
            if problem.total_bytes(trial) > max_bytes:
                continue
            spent = max(1, problem.total_bytes(trial) - base)
            dt = problem.mse(trial)
            gain = (d - dt) / spent
            if best is None or gain > best[0]:
                best = (gain, trial, dt)
        if best is None:
            break
        gain, trial, dt = best
        if gain <= 0 and problem.total_bytes(cur) >= min_bytes:
            break
        cur, d = trial, dt
        moves += 1
    return tuple(cur), d


def psnr_of(mse: float) -> float:
    return math.inf if mse <= 0 else 10 * math.log10(255.0**2 / mse)


def search_quality(problem: QuantProblem, steps: Sequence[int], max_mse: float, *, move: int = 2,
                   max_moves: int = 400) -> tuple[tuple[int, ...], float]:
    """Fewest bytes with distortion ``<= max_mse``: coarsen (least distortion per byte saved)
    while the next move keeps the distortion under the ceiling.

    Returns:
        ``(steps, mse)``; ``mse`` may exceed ``max_mse`` only if the starting steps already did.
    """
    cur = list(steps)
    d = problem.mse(cur)
    idx = _searchable(problem) or list(range(problem.n_tensors))
    blocked: set[int] = set()
    for _ in range(max_moves):
        best = _cheapest_coarsening(problem, cur, d, idx, move, max_mse=max_mse, blocked=blocked)
        if best is None:
            break
        cur, d = best
    return tuple(cur), d


def _cheapest_coarsening(problem: QuantProblem, cur: list[int], d: float, idx: Sequence[int], move: int, *,
                         max_mse: float = math.inf, blocked: Optional[set[int]] = None
                         ) -> Optional[tuple[list[int], float]]:
    """The one-tensor coarsening that adds the least distortion per byte saved: ``(steps, mse)``.

    Moves that save nothing are skipped; a tensor whose move would exceed ``max_mse`` is added
    to ``blocked`` (and skipped from then on).  None when no move is left.
    """
    best = None
    base = problem.total_bytes(cur)
    for i in idx:
        if blocked is not None and i in blocked:
            continue
        s = _clamp(problem, i, cur[i] - move)
        if s == cur[i]:
            continue
        trial = cur.copy()
        trial[i] = s
        saved = base - problem.total_bytes(trial)
        if saved <= 0:
            continue
        dt = problem.mse(trial)
        if dt > max_mse:
            if blocked is not None:
                blocked.add(i)
            continue
        ratio = (dt - d) / saved
        if best is None or ratio < best[0]:
            best = (ratio, trial, dt)
    return None if best is None else (best[1], best[2])
