"""Representations and layouts: how a fitted network becomes chunks, and back.

Two registries with stable wire ids (stored in ``NHDR``):

* ``REPRESENTATIONS`` -- what is stored about the weights: ``dense`` (0, every weight quantized
  and entropy-coded) and ``pruned`` (1, a MASK chunk with the keep masks of the pruned tensors,
  then a TDAT chunk with only their surviving weights).  ``supermask`` (2) is reserved.
* ``LAYOUTS`` -- how the stream is split into segments: ``single`` (0, one segment).
  ``width-chunks`` (1) is reserved.

A representation never touches bytes itself: it turns parameters into
:class:`~nfcodec.bitstream.entropy.CodedTensor` (and :class:`~nfcodec.bitstream.masks.CodedMask`)
lists and the bitstream layer codes them.  Its decoder side (``materialize``) is pure and needs
no torch: from the architecture's parameter shapes and the stream's chunks it returns one
:class:`~nfcodec.exact.layers.QTensor` (integer symbols and a step index) per parameter, after
checking every record header against the shapes and before decoding any entropy-coded word.
``consumes`` lists the critical chunk types it reads; the decoder refuses a stream with any
other critical payload chunk.  The encoder side (``export``) reads a fitted torch module's
``parameters()`` (no torch import here).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Protocol, Sequence

import numpy as np

from . import quant
from .bitstream import Chunk, CodedTensor, FormatError, SegmentHeader, decode_tensors, encode_tensors
from .bitstream.masks import CodedMask, decode_masks, encode_masks
from .exact.layers import QTensor
from .registry import Registry

__all__ = ["Representation", "Layout", "REPRESENTATIONS", "LAYOUTS", "DenseRepresentation", "PrunedRepresentation",
           "SingleLayout", "quantized_tensors"]

Shapes = Sequence[tuple[int, ...]]


class Representation(Protocol):
    name: ClassVar[str]
    wire_id: ClassVar[int]
    consumes: ClassVar[frozenset[bytes]]

    def export(self, model: Any, steps: Sequence[int],
               masks: Sequence[Optional[np.ndarray]] = ()) -> list[Chunk]: ...

    def materialize(self, shapes: Shapes, chunks: Sequence[Chunk]) -> list[QTensor]: ...


class Layout(Protocol):
    name: ClassVar[str]
    wire_id: ClassVar[int]
    n_segments: ClassVar[int]
    consumes: ClassVar[frozenset[bytes]]

    def check(self, chunks: Sequence[Chunk]) -> None: ...


REPRESENTATIONS: Registry[Representation] = Registry("representation")
LAYOUTS: Registry[Layout] = Registry("layout")


def _values(p: Any) -> np.ndarray:
    """A torch parameter's values as a flat numpy array (duck-typed: no torch import)."""
    return p.detach().cpu().numpy().ravel()


def quantized_tensors(model: Any, steps: Sequence[int]) -> list[CodedTensor]:
    """Quantize every parameter (canonical ``parameters()`` order) with its step index."""
    params = list(model.parameters())
    if len(params) != len(steps):
        raise ValueError(f"{len(steps)} step indices for {len(params)} parameter tensors")
    return [CodedTensor(i, s, quant.quantize(_values(p), s)) for i, (p, s) in enumerate(zip(params, steps))]


def _only(chunks: Sequence[Chunk], ctype: bytes, what: str) -> Chunk:
    found = [c for c in chunks if c.ctype == ctype]
    if len(found) != 1:
        raise FormatError(f"{what} stream needs exactly one {ctype.decode()} chunk, found {len(found)}")
    return found[0]


def _step(t: CodedTensor, chunk: str = "TDAT") -> int:
    """The record's step index, which must address the step table (format.md section 5)."""
    if not 0 <= t.step < quant.N_STEPS:
        raise FormatError(f"{chunk} tensor {t.index}: step={t.step} outside the step table [0, {quant.N_STEPS - 1}]")
    return t.step


def _qtensor(t: CodedTensor, shape: tuple[int, ...]) -> QTensor:
    return QTensor(np.asarray(t.symbols, dtype=np.int64).reshape(shape), _step(t))


@dataclass(frozen=True)
class DenseRepresentation:
    """Every weight quantized with its tensor's table step and entropy-coded in one TDAT chunk."""

    name: ClassVar[str] = "dense"
    wire_id: ClassVar[int] = 0

    consumes: ClassVar[frozenset[bytes]] = frozenset({b"TDAT"})

    def export(self, model: Any, steps: Sequence[int],
               masks: Sequence[Optional[np.ndarray]] = ()) -> list[Chunk]:
        if any(m is not None for m in masks):
            raise ValueError("the dense representation stores no masks; use representation='pruned'")
        return [Chunk(b"TDAT", encode_tensors(quantized_tensors(model, steps)))]

    def materialize(self, shapes: Shapes, chunks: Sequence[Chunk]) -> list[QTensor]:
        tdat = _only(chunks, b"TDAT", "dense")
        sizes = [math.prod(s) for s in shapes]
        tensors = decode_tensors(tdat.data, max_symbols=sum(sizes), expect=sizes)
        return [_qtensor(t, shape) for t, shape in zip(tensors, shapes)]


@dataclass(frozen=True)
class PrunedRepresentation:
    """Magnitude-pruned weights: a MASK chunk, then a TDAT chunk with the survivors only.

    ``export`` takes one entry per parameter (canonical order): a flat bool keep mask for each
    pruned tensor, None for a dense one (biases, small tensors: see :mod:`nfcodec.prune`).
    The MASK chunk holds the masks of the pruned tensors with their parameter indices
    (:mod:`nfcodec.bitstream.masks`, each with its smallest coder); the TDAT chunk holds every
    tensor, in order, with its quantization step: all values of a dense tensor, only the kept
    values (C order) of a pruned one.  The step indices are the caller's (``fit_sampler``
    chooses them after pruning, from the survivors).  Pruned positions decode as exactly 0.
    """

    name: ClassVar[str] = "pruned"
    wire_id: ClassVar[int] = 1
    consumes: ClassVar[frozenset[bytes]] = frozenset({b"MASK", b"TDAT"})

    def export(self, model: Any, steps: Sequence[int],
               masks: Sequence[Optional[np.ndarray]] = ()) -> list[Chunk]:
        params = list(model.parameters())
        if len(masks) != len(params):
            raise ValueError(f"the pruned representation needs one mask entry per parameter tensor "
                             f"({len(params)}), got {len(masks)}; fit with a PruneConfig")
        if len(steps) != len(params):
            raise ValueError(f"{len(steps)} step indices for {len(params)} parameter tensors")
        coded_masks, tensors = [], []
        for i, (p, s, m) in enumerate(zip(params, steps, masks)):
            values = _values(p)
            if m is not None:
                m = np.asarray(m, dtype=bool).reshape(-1)
                if m.size != values.size:
                    raise ValueError(f"mask {i} has {m.size} entries, parameter {i} has {values.size}")
                coded_masks.append(CodedMask(i, m.reshape(p.shape[0], -1) if p.ndim >= 2 and p.numel() else m))
                values = values[m]
            tensors.append(CodedTensor(i, s, quant.quantize(values, s)))
        return [Chunk(b"MASK", encode_masks(coded_masks)), Chunk(b"TDAT", encode_tensors(tensors))]

    def materialize(self, shapes: Shapes, chunks: Sequence[Chunk]) -> list[QTensor]:
        mask_chunk, tdat = _only(chunks, b"MASK", "pruned"), _only(chunks, b"TDAT", "pruned")
        sizes = [math.prod(s) for s in shapes]
        masks: list[Optional[np.ndarray]] = [None] * len(shapes)
        for cm in decode_masks(mask_chunk.data, sizes=sizes, max_bits=sum(sizes)):
            masks[cm.index] = cm.flat
        kept = [size if m is None else int(np.count_nonzero(m)) for size, m in zip(sizes, masks)]
        out = []
        for t, shape, m in zip(decode_tensors(tdat.data, max_symbols=sum(kept), expect=kept), shapes, masks):
            if m is None:
                out.append(_qtensor(t, shape))
                continue
            full = np.zeros(m.size, np.int64)
            full[m] = t.symbols
            out.append(QTensor(full.reshape(shape), _step(t)))
        return out


@dataclass(frozen=True)
class SingleLayout:
    """The whole signal in one segment (no SEGM chunk)."""

    name: ClassVar[str] = "single"
    wire_id: ClassVar[int] = 0
    n_segments: ClassVar[int] = 1
    consumes: ClassVar[frozenset[bytes]] = frozenset({b"SEGM"})

    def check(self, chunks: Sequence[Chunk]) -> None:
        """At most one SEGM chunk, and it must say "whole segment 0" (format 1.0 allowed it)."""
        segs = [c for c in chunks if c.ctype == b"SEGM"]
        if len(segs) > 1:
            raise FormatError(f"layout single: {len(segs)} SEGM chunks, at most one is allowed")
        if segs:
            seg = SegmentHeader.unpack(segs[0].data)
            if (seg.index, seg.kind) != (0, 0):
                raise FormatError(f"layout single: SEGM index {seg.index} kind {seg.kind}, "
                                  "must be segment 0 of kind whole")


REPRESENTATIONS.register(DenseRepresentation())
REPRESENTATIONS.register(PrunedRepresentation())
LAYOUTS.register(SingleLayout())
