"""``dense`` (representation 0): every weight quantized with its tensor's table step, one TDAT chunk."""
from __future__ import annotations

import math
from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from ..bitstream import Chunk, decode_tensors, tensor_report
from ..exact.layers import QTensor
from ..variants import REPRESENTATIONS, QuantPayload, Shapes, only_chunk, step_checked

__all__ = ["DenseRepresentation", "BITS_PER_WEIGHT", "model_values"]

#: Coded bits per weight at 10 bits (Kodak, laplace/gaussian models; docs/benchmarks.md): rate
#: control's prediction, scaled by ``bits / 10``.
BITS_PER_WEIGHT = 9.0


def model_values(model: Any) -> list[np.ndarray]:
    """A torch module's parameters (canonical order) as flat float64 arrays (duck-typed: no torch import)."""
    return [p.detach().cpu().numpy().ravel().astype(np.float64) for p in model.parameters()]


def qtensor(t: Any, shape: tuple[int, ...]) -> QTensor:
    return QTensor(np.asarray(t.symbols, dtype=np.int64).reshape(shape), step_checked(t))


class DenseRepresentation:
    """Every weight quantized with its tensor's table step and entropy-coded in one TDAT chunk."""

    name = "dense"
    consumes: ClassVar[frozenset[bytes]] = frozenset({b"TDAT"})
    growable: ClassVar[bool] = True      # codes the parts of a width-chunks level (nfcodec.widthchunks)
    priors: ClassVar[bool] = True        # may code residuals from a prior (PRIR, nfcodec.residual)

    # ------------------------------------------------------------------ decoder
    def materialize(self, shapes: Shapes, chunks: Sequence[Chunk], laws: Sequence[Any] = ()) -> list[QTensor]:
        tdat = only_chunk(chunks, b"TDAT", self.name)
        sizes = [math.prod(s) for s in shapes]
        tensors = decode_tensors(tdat.data, max_symbols=sum(sizes), expect=sizes)
        return [qtensor(t, shape) for t, shape in zip(tensors, shapes)]

    def describe(self, shapes: Shapes, chunks: Sequence[Chunk]) -> dict[str, Any]:
        tdat = sum(len(c.data) for c in chunks if c.ctype == b"TDAT")
        stored = sum(r["n"] for c in chunks if c.ctype == b"TDAT" for r in tensor_report(c.data))
        weights = sum(math.prod(s) for s in shapes)
        return {"weights": weights, "stored_values": stored, "bits_per_weight": round(8 * tdat / max(weights, 1), 4)}

    # ------------------------------------------------------------------ encoder
    def fit_hooks(self, config: Any, arch: Any, record: Any, eligible: Any = None) -> Any:
        from ..fit import FitHooks

        return FitHooks()

    def quant_payload(self, values: Sequence[np.ndarray], shapes: Shapes, steps: Sequence[int],
                      masks: Sequence[Optional[np.ndarray]]) -> QuantPayload:
        return QuantPayload(self, values, shapes, steps, masks)

    def payload(self, model: Any, fit: Any, arch: Any, record: Any, config: Any) -> QuantPayload:
        return self.quant_payload(model_values(model), arch.param_shapes(record), fit.steps, fit.masks)

    def chunks(self, payload: QuantPayload, steps: Sequence[int]) -> list[Chunk]:
        if any(m is not None for m in payload.masks):
            raise ValueError("the dense representation stores no masks; use representation='pruned'")
        return [payload.tdat(steps)]

    def export(self, model: Any, steps: Sequence[int], masks: Sequence[Optional[np.ndarray]] = ()) -> list[Chunk]:
        """The chunks of a fitted module quantized with ``steps`` (tests, benchmarks)."""
        shapes = [tuple(p.shape) for p in model.parameters()]
        return self.chunks(self.quant_payload(model_values(model), shapes, steps, masks), steps)

    def predicted_bits(self, shapes: Shapes, config: Any) -> float:
        return sum(math.prod(s) for s in shapes) * BITS_PER_WEIGHT * config.quant.bits / 10

    def rate_config(self, config: Any, shapes: Shapes, max_bits: Optional[float]) -> Any:
        return config

    def settings(self, config: Any) -> dict[str, Any]:
        return {}


REPRESENTATIONS.register(DenseRepresentation())
