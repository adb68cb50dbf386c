"""``supermask`` (representation 2): frozen random weights from a seed, nested binary masks and scales.

After Choi, Kang & Oh (ICML 2023, ``shared/papers/003``): no weight value is stored.  Every
weight and bias is regenerated from the seed (:mod:`nfcodec.exact.rng`, laws from the
architecture's ``init_laws``: Kaiming normal for NeRV, SIREN's own initialisation for SIREN);
the file holds N nested masks per weight tensor and N scales.  A weight kept by levels 1..c
(and no deeper) is ``w_rand * (alpha_1 + ... + alpha_c)``; a weight no level keeps is 0; biases
(and any tensor without masks) are ``b_rand`` unscaled.  ``alpha_1`` is not trained: it is the
paper's ``alpha_1 = 1`` for weights drawn with the law of the *kept* fan-in (edge-popup's
"scale_fan"), i.e. ``1 / sqrt(k_1)`` times the architecture's law, which keeps the signal from
vanishing through layers that keep a share k_1 of their weights.  ``alpha_2 .. alpha_N`` are
learned.

Chunks, in order (``docs/format.md`` sections 4.3, 4a and 5d)::

    SEED  SeedRecord: rng 0 (Philox4x64-10), seed
    MASK  nested masks (bitstream.masks.encode_nested_masks): level 1 over a tensor's elements,
          level n over the positions level n - 1 kept
    SCAL  u8 N (levels, 1..8), u8 F (fractional bits of the scales, 0..16),
          then N uvarints a_1 .. a_N in [1, 2^16]: alpha_n = a_n / 2^F

Exact integers: with ``A_c = a_1 + ... + a_c`` (``A_0 = 0``) a masked tensor decodes to symbols
``Z * A_c`` with step ``STEP_TABLE[law_step + 8 F]`` (= ``law step * 2^-F``), an unmasked one to
``Z`` with the law's step; ``Z`` are the generator's integer samples.  Everything after that is
the exact arithmetic of section 6.  The encoder side (scores, straight-through top-k, learned
scales) is :mod:`nfcodec.models.supermask`.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, ClassVar, Iterator, Optional, Sequence

import numpy as np

from ..bitstream import Chunk, FormatError, SeedRecord
from ..bitstream.fields import ByteReader, write_uvarint
from ..bitstream.masks import CodedMask, decode_nested_masks, encode_nested_masks
from ..exact import rng
from ..exact.layers import QTensor
from ..quant import N_STEPS
from ..variants import REPRESENTATIONS, Shapes, only_chunk

__all__ = ["SupermaskRepresentation", "SupermaskPayload", "Scales", "level_densities", "level_counts",
           "SCALE_FRAC", "MAX_SCALE", "pack_scales", "unpack_scales", "nested_levels"]

#: Fractional bits of the stored scales (the encoder's choice; the file says F).
SCALE_FRAC = 8
#: Largest stored scale integer a_n.
MAX_SCALE = 1 << 16
MAX_FRAC = 16
_OKOSHI_END = 0.002     # the linear rule's virtual density after the last level (see level_densities)


class Scales:
    """The SCAL record: ``levels`` N, ``frac`` F and the integers ``a`` = (a_1, ..., a_N)."""

    def __init__(self, levels: int, frac: int, a: Sequence[int]) -> None:
        self.levels, self.frac, self.a = levels, frac, tuple(int(v) for v in a)

    @property
    def cumulative(self) -> np.ndarray:
        """``A_0 .. A_N`` (int64): ``A_0 = 0``, ``A_c = a_1 + ... + a_c``."""
        return np.cumsum([0, *self.a]).astype(np.int64)

    def alphas(self) -> list[float]:
        return [v / (1 << self.frac) for v in self.a]


def pack_scales(s: Scales) -> bytes:
    return bytes([s.levels, s.frac]) + b"".join(write_uvarint(v) for v in s.a)


def unpack_scales(data: bytes) -> Scales:
    r = ByteReader(data, "SCAL")
    levels, frac = r.u8("levels"), r.u8("frac")
    if not 1 <= levels <= 8:
        raise FormatError(f"SCAL levels={levels} outside [1, 8]")
    if frac > MAX_FRAC:
        raise FormatError(f"SCAL frac={frac} outside [0, {MAX_FRAC}]")
    a = []
    for n in range(1, levels + 1):
        v = r.uvarint(f"a_{n}")
        if not 1 <= v <= MAX_SCALE:
            raise FormatError(f"SCAL a_{n}={v} outside [1, {MAX_SCALE}]")
        a.append(v)
    if r.remaining:
        raise FormatError(f"SCAL: {r.remaining} bytes left after {levels} scales")
    return Scales(levels, frac, a)


def level_densities(k1: float, levels: int) -> tuple[float, ...]:
    """Densities k_1 > ... > k_N by the linear rule of Okoshi et al. (2022), as in the paper.

    The score thresholds of a standard normal score distribution (|s|-quantiles
    ``t_n = Phi^-1(1 - k_n / 2)``) are spaced linearly from ``t_1`` to the threshold of density
    0.002; ``k1 = 0.2, N = 3`` gives (0.2, 0.0595, 0.0129), the paper's values.
    """
    if not 0 < k1 < 1 or levels < 1:
        raise ValueError(f"density {k1} outside (0, 1) or {levels} levels")
    nd = statistics.NormalDist()
    t1, end = nd.inv_cdf(1 - k1 / 2), nd.inv_cdf(1 - min(_OKOSHI_END, k1 / 4) / 2)
    return tuple(2 * (1 - nd.cdf(t1 + (end - t1) * n / levels)) for n in range(levels))


def first_scale(k1: float) -> float:
    """``alpha_1``: ``1 / sqrt(k_1)`` rounded to SCALE_FRAC fractional bits (the law of the kept fan-in)."""
    return round((1 << SCALE_FRAC) / math.sqrt(k1)) / (1 << SCALE_FRAC)


def level_counts(size: int, densities: Sequence[float]) -> list[int]:
    """Kept weights per level of a tensor of ``size`` weights: ``round(k_n * size)``, non-increasing."""
    out, prev = [], size
    for k in densities:
        prev = min(prev, int(round(k * size)))
        out.append(prev)
    return out


def nested_levels(order: np.ndarray, counts: Sequence[int], size: int) -> list[np.ndarray]:
    """The level masks in nested form from a ranking (``order``: indices, best first).

    Level 1 is a (size,) bool mask; level n > 1 a bool mask over the C-order positions level
    n - 1 kept.
    """
    rank = np.empty(size, np.int64)
    rank[order] = np.arange(size)
    out = []
    prev_pos = np.arange(size)
    for n, k in enumerate(counts):
        keep = rank[prev_pos] < k
        out.append(keep)
        prev_pos = prev_pos[keep]
    return out


def level_of(levels: Sequence[np.ndarray], size: int) -> np.ndarray:
    """How many levels keep each element (int64, 0..N) from nested-form masks."""
    c = np.zeros(size, np.int64)
    pos = np.arange(size)
    for bits in levels:
        if bits.size != pos.size:
            raise FormatError(f"MASK level has {bits.size} bits for {pos.size} positions")
        pos = pos[np.asarray(bits, dtype=bool)]
        c[pos] += 1
    return c


def _ranking(scores: Any) -> np.ndarray:
    """Weight indices by decreasing |score| (ties by position)."""
    return np.argsort(-np.abs(np.asarray(scores, dtype=np.float64).ravel()), kind="stable")


def _h2(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


class _LazyTensors(Sequence):
    """The QTensors, each regenerated when asked for (decode memory: one tensor's samples)."""

    def __init__(self, n: int, make: Any) -> None:
        self._n, self._make = n, make

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._make(j) for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._make(i % self._n)

    def __iter__(self) -> Iterator[QTensor]:
        return (self._make(i) for i in range(self._n))


def _tensor(seed: int, i: int, shape: tuple[int, ...], law: rng.Law, levels: Optional[Sequence[np.ndarray]],
            scales: Scales) -> QTensor:
    size = math.prod(shape)
    z = rng.sample_symbols(seed, i, law, size)
    step = rng.law_step(law)
    if levels is None:
        return QTensor(z.reshape(shape), step)
    if step + 8 * scales.frac >= N_STEPS:
        raise FormatError(f"tensor {i}: law step {step} with SCAL frac={scales.frac} is beyond the step table")
    return QTensor((z * scales.cumulative[level_of(levels, size)]).reshape(shape), step + 8 * scales.frac)


def regenerate(seed: int, shapes: Shapes, laws: Sequence[rng.Law], levels: dict[int, Sequence[np.ndarray]],
               scales: Scales) -> _LazyTensors:
    if len(laws) != len(shapes):
        raise FormatError(f"{len(laws)} random laws for {len(shapes)} tensors")
    return _LazyTensors(len(shapes), lambda i: _tensor(seed, i, tuple(shapes[i]), laws[i], levels.get(i), scales))


class SupermaskPayload:
    """Seed, nested masks and scales of a fitted supermask network (no steps: a fixed size)."""

    steps: tuple[int, ...] = ()
    n_tensors = 0

    def __init__(self, seed: int, shapes: Shapes, laws: Sequence[rng.Law], levels: dict[int, list[np.ndarray]],
                 scales: Scales, scores: Optional[dict[int, np.ndarray]] = None,
                 densities: Sequence[float] = ()) -> None:
        self.seed, self.shapes, self.laws, self.levels, self.scales = seed, list(shapes), list(laws), levels, scales
        self.scores, self.densities = scores or {}, tuple(densities)

    def resized(self, factor: float, config: Any) -> tuple["SupermaskPayload", Any]:
        """The masks re-thresholded from the trained scores at ``factor`` x the first density
        (the others by the same linear rule; no refit), and the config that says so (rate control
        uses this to land in its band: a supermask file has no steps to move)."""
        k1 = min(0.5, max(0.001, self.densities[0] * factor))
        cfg = config.replace(density=round(k1, 6))
        dens = level_densities(k1, self.scales.levels)
        levels = {i: nested_levels(_ranking(s), level_counts(math.prod(self.shapes[i]), dens),
                                   math.prod(self.shapes[i])) for i, s in self.scores.items()}
        return SupermaskPayload(self.seed, self.shapes, self.laws, levels, self.scales, self.scores, dens), cfg

    def size(self, i: int) -> int:
        raise IndexError(i)

    def max_step(self, i: int) -> int:
        raise IndexError(i)

    def tensor_bytes(self, i: int, step: int) -> int:
        raise IndexError(i)

    def qtensors(self, steps: Sequence[int] = ()) -> list[QTensor]:
        return list(regenerate(self.seed, self.shapes, self.laws, self.levels, self.scales))

    def mask_payload(self) -> bytes:
        idx = sorted(self.levels)
        per_level = []
        for n in range(self.scales.levels):
            masks = []
            for i in idx:
                bits = self.levels[i][n]
                shape = self.shapes[i]
                # level 1 keeps the tensor's row structure (a hint for the context coder)
                masks.append(CodedMask(i, bits.reshape(shape[0], -1) if n == 0 and len(shape) >= 2 and bits.size
                                       else bits))
            per_level.append(masks)
        return encode_nested_masks(per_level)

    def chunks(self, steps: Sequence[int] = ()) -> list[Chunk]:
        return [Chunk(b"SEED", SeedRecord(rng=rng.RNG_PHILOX, seed=self.seed).pack()),
                Chunk(b"MASK", self.mask_payload()), Chunk(b"SCAL", pack_scales(self.scales))]


class SupermaskRepresentation:
    name = "supermask"
    rate_oversize = 1.0     # no steps to squeeze: size the network for the budget, then fit the density
    consumes: ClassVar[frozenset[bytes]] = frozenset({b"SEED", b"MASK", b"SCAL"})
    growable: ClassVar[bool] = False     # frozen weights are keyed by whole tensors: no width-chunks yet
    priors: ClassVar[bool] = False       # no stored weight values: nothing to code against a prior

    # ------------------------------------------------------------------ decoder
    def _parts(self, shapes: Shapes, chunks: Sequence[Chunk]) -> tuple[SeedRecord, Scales, list[list[CodedMask]]]:
        seed = SeedRecord.unpack(only_chunk(chunks, b"SEED", self.name).data)
        if seed.rng != rng.RNG_PHILOX:
            raise FormatError(f"SEED rng={seed.rng} unknown")
        scales = unpack_scales(only_chunk(chunks, b"SCAL", self.name).data)
        sizes = [math.prod(s) for s in shapes]
        levels = decode_nested_masks(only_chunk(chunks, b"MASK", self.name).data, sizes=sizes,
                                     max_bits=scales.levels * sum(sizes))
        if len(levels) != scales.levels:
            raise FormatError(f"MASK has {len(levels)} levels, SCAL has {scales.levels}")
        return seed, scales, levels

    def materialize(self, shapes: Shapes, chunks: Sequence[Chunk], laws: Sequence[Any] = ()) -> Sequence[QTensor]:
        seed, scales, levels = self._parts(shapes, chunks)
        per_tensor: dict[int, list[np.ndarray]] = {}
        for masks in levels:
            for m in masks:
                per_tensor.setdefault(m.index, []).append(m.flat)
        return regenerate(seed.seed, shapes, laws, per_tensor, scales)

    def describe(self, shapes: Shapes, chunks: Sequence[Chunk]) -> dict[str, Any]:
        seed, scales, levels = self._parts(shapes, chunks)
        weights = sum(math.prod(s) for s in shapes)
        masked = sum(math.prod(shapes[m.index]) for m in levels[0]) if levels else 0
        mask_bytes = len(only_chunk(chunks, b"MASK", self.name).data)
        bound = 0.0
        rows = []
        for n, masks in enumerate(levels):
            n_bits = sum(m.flat.size for m in masks)
            kept = sum(int(np.count_nonzero(m.flat)) for m in masks)
            bound += sum(m.flat.size * _h2(np.count_nonzero(m.flat) / max(m.flat.size, 1)) for m in masks)
            rows.append({"level": n + 1, "kept": kept, "density": round(kept / max(masked, 1), 6),
                         "coded_over": n_bits})
        stored = sum(len(c.data) for c in chunks if c.ctype in self.consumes)
        return {"weights": weights, "masked_weights": masked, "seed": seed.seed, "rng": "philox4x64-10",
                "levels": rows, "scales": [round(a, 6) for a in scales.alphas()],
                "mask_bits": 8 * mask_bytes, "entropy_bound_bits": round(bound, 1),
                "mask_bits_per_weight": round(8 * mask_bytes / max(masked, 1), 4),
                "bits_per_weight": round(8 * stored / max(weights, 1), 4), "weight_data": "none"}

    # ------------------------------------------------------------------ encoder
    def fit_hooks(self, config: Any, arch: Any, record: Any, eligible: Any = None) -> Any:
        from ..models.supermask import SupermaskHooks

        return SupermaskHooks(config.supermask, arch.init_laws(record), config.fit.seed)

    def payload(self, model: Any, fit: Any, arch: Any, record: Any, config: Any) -> SupermaskPayload:
        cfg = config.supermask
        dens = level_densities(cfg.density, cfg.levels)
        shapes = arch.param_shapes(record)
        levels: dict[int, list[np.ndarray]] = {}
        for i, scores in fit.extra["scores"].items():
            size = math.prod(shapes[i])
            levels[i] = nested_levels(_ranking(scores), level_counts(size, dens), size)
        a = [min(MAX_SCALE, max(1, int(round(v * (1 << SCALE_FRAC))))) for v in fit.extra["alphas"]]
        return SupermaskPayload(fit.extra["seed"], shapes, arch.init_laws(record), levels,
                                Scales(cfg.levels, SCALE_FRAC, a), fit.extra["scores"], dens)

    def predicted_bits(self, shapes: Shapes, config: Any) -> float:
        dens = level_densities(config.supermask.density, config.supermask.levels)
        per_weight = _h2(dens[0]) + sum(dens[n - 1] * _h2(dens[n] / dens[n - 1]) for n in range(1, len(dens)))
        masked = [math.prod(s) for s in shapes if len(s) >= 2]
        # each mask record: index, n, coder, ones and word count varints and a last partial word
        return sum(masked) * per_weight + len(masked) * len(dens) * 8 * 10 + 8 * 24

    def rate_config(self, config: Any, shapes: Shapes, max_bits: Optional[float]) -> Any:
        """Under a byte budget, the density whose predicted file fills it (k_1 in [0.02, 0.45])."""
        if max_bits is None:
            return config
        lo, hi = 0.02, 0.45
        for _ in range(40):
            mid = (lo + hi) / 2
            if self.predicted_bits(shapes, config.replace(density=mid)) <= max_bits:
                lo = mid
            else:
                hi = mid
        return config.replace(density=round(lo, 6))

    def settings(self, config: Any) -> dict[str, Any]:
        cfg = config.supermask
        return {"levels": cfg.levels, "densities": [round(k, 6) for k in level_densities(cfg.density, cfg.levels)],
                "seed": config.fit.seed}


REPRESENTATIONS.register(SupermaskRepresentation())
