"""``pruned`` (representation 1): magnitude-pruned weights, a MASK chunk then a TDAT chunk of survivors.

The MASK chunk holds the keep masks of the pruned tensors with their parameter indices
(:mod:`nfcodec.bitstream.masks`, each with its smallest coder); the TDAT chunk holds every
tensor, in order, with its quantization step: all values of a dense tensor, only the kept
values (C order) of a pruned one.  Pruned positions decode as exactly 0.  The encoder side is
:class:`nfcodec.prune.PruneHooks` (pruning rounds in the fit loop).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from ..bitstream import Chunk, decode_tensors
from ..bitstream.masks import CodedMask, decode_masks, encode_masks, mask_report
from ..exact.layers import QTensor
from ..variants import REPRESENTATIONS, QuantPayload, Shapes, only_chunk, step_checked
from .dense import BITS_PER_WEIGHT, DenseRepresentation, qtensor

__all__ = ["PrunedRepresentation", "DEFAULT_SPARSITY"]

#: Sparsity under rate control when none was given (measured best of 0.2-0.7, docs/benchmarks.md).
DEFAULT_SPARSITY = 0.2


def _h2(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


class PrunedRepresentation(DenseRepresentation):
    name = "pruned"
    consumes: ClassVar[frozenset[bytes]] = frozenset({b"MASK", b"TDAT"})

    # ------------------------------------------------------------------ decoder
    def materialize(self, shapes: Shapes, chunks: Sequence[Chunk], laws: Sequence[Any] = ()) -> list[QTensor]:
        mask_chunk, tdat = only_chunk(chunks, b"MASK", self.name), only_chunk(chunks, b"TDAT", self.name)
        sizes = [math.prod(s) for s in shapes]
        masks: list[Optional[np.ndarray]] = [None] * len(shapes)
        for cm in decode_masks(mask_chunk.data, sizes=sizes, max_bits=sum(sizes)):
            masks[cm.index] = cm.flat
        kept = [size if m is None else int(np.count_nonzero(m)) for size, m in zip(sizes, masks)]
        out = []
        for t, shape, m in zip(decode_tensors(tdat.data, max_symbols=sum(kept), expect=kept), shapes, masks):
            if m is None:
                out.append(qtensor(t, shape))
                continue
            full = np.zeros(m.size, np.int64)
            full[m] = t.symbols
            out.append(QTensor(full.reshape(shape), step_checked(t)))
        return out

    def describe(self, shapes: Shapes, chunks: Sequence[Chunk]) -> dict[str, Any]:
        out = super().describe(shapes, chunks)
        rows = [m for c in chunks if c.ctype == b"MASK" for m in mask_report(c.data)]
        masked = sum(r["n"] for r in rows)
        out.update(masked_weights=masked, kept=sum(r["kept"] for r in rows),
                   mask_bits_per_weight=round(8 * sum(r["bytes"] for r in rows) / max(masked, 1), 4))
        out["masks"] = rows
        out["bits_per_weight"] = round(8 * sum(len(c.data) for c in chunks if c.ctype in self.consumes)
                                       / max(out["weights"], 1), 4)
        return out

    # ------------------------------------------------------------------ encoder
    def fit_hooks(self, config: Any, arch: Any, record: Any, eligible: Any = None) -> Any:
        """``eligible``: per tensor, the weights pruning may touch (a width-chunks level's own)."""
        from ..prune import PruneHooks

        return PruneHooks(config.prune, eligible)

    def quant_payload(self, values: Sequence[np.ndarray], shapes: Shapes, steps: Sequence[int],
                      masks: Sequence[Optional[np.ndarray]]) -> QuantPayload:
        if len(masks) != len(values):
            raise ValueError(f"the pruned representation needs one mask entry per parameter tensor "
                             f"({len(values)}), got {len(masks)}; fit with a PruneConfig")
        return QuantPayload(self, values, shapes, steps, masks)

    def chunks(self, payload: QuantPayload, steps: Sequence[int]) -> list[Chunk]:
        coded = []
        for i, (m, shape) in enumerate(zip(payload.masks, payload.shapes)):
            if m is None:
                continue
            m = np.asarray(m, dtype=bool).reshape(-1)
            if m.size != payload.full[i].size:
                raise ValueError(f"mask {i} has {m.size} entries, parameter {i} has {payload.full[i].size}")
            coded.append(CodedMask(i, m.reshape(shape[0], -1) if len(shape) >= 2 and m.size else m))
        return [Chunk(b"MASK", encode_masks(coded)), payload.tdat(steps)]

    def predicted_bits(self, shapes: Shapes, config: Any) -> float:
        prunable = sum(math.prod(s) for s in shapes if len(s) >= 2)
        other = sum(math.prod(s) for s in shapes) - prunable
        s = config.prune.sparsity
        return (prunable * (1 - s) + other) * BITS_PER_WEIGHT * config.quant.bits / 10 + prunable * _h2(s)

    def rate_config(self, config: Any, shapes: Shapes, max_bits: Optional[float]) -> Any:
        return config.replace(sparsity=DEFAULT_SPARSITY) if config.prune.sparsity == 0 else config

    def settings(self, config: Any) -> dict[str, Any]:
        return {"sparsity": config.prune.sparsity, "prune_scope": config.prune.prune_scope}


REPRESENTATIONS.register(PrunedRepresentation())
