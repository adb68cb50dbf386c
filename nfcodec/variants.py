"""Representations and layouts: how a fitted network becomes chunks, and back.

Two registries with stable wire ids (stored in ``NHDR``):

* ``REPRESENTATIONS`` -- what is stored about the weights: ``dense`` (0, every weight quantized
  and entropy-coded) and ``pruned`` (1, a MASK chunk with the keep masks of the pruned tensors,
  then a TDAT chunk with only their surviving weights).  ``supermask`` (2) is reserved.
* ``LAYOUTS`` -- how the stream is split into segments: ``single`` (0, one segment).
  ``width-chunks`` (1) is reserved.

A representation never touches bytes itself: it turns parameters into
:class:`~nfcodec.bitstream.entropy.CodedTensor` (and :class:`~nfcodec.bitstream.masks.CodedMask`)
lists and the bitstream layer codes them.  The decoder side (``materialize``) is pure: no
training code (the masks come from :mod:`nfcodec.prune` on the encoder side only), no randomness.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Protocol, Sequence

import numpy as np
import torch

from . import quant
from .bitstream import Chunk, CodedTensor, FormatError, decode_tensors, encode_tensors
from .bitstream.masks import CodedMask, decode_masks, encode_masks
from .registry import Registry

__all__ = ["Representation", "Layout", "REPRESENTATIONS", "LAYOUTS", "DenseRepresentation", "PrunedRepresentation",
           "SingleLayout"]


class Representation(Protocol):
    name: ClassVar[str]
    wire_id: ClassVar[int]

    def export(self, model: torch.nn.Module, steps: Sequence[int],
               masks: Sequence[Optional[np.ndarray]] = ()) -> list[Chunk]: ...

    def materialize(self, model: torch.nn.Module, chunks: Sequence[Chunk]) -> torch.nn.Module: ...


class Layout(Protocol):
    name: ClassVar[str]
    wire_id: ClassVar[int]
    n_segments: ClassVar[int]


REPRESENTATIONS: Registry[Representation] = Registry("representation")
LAYOUTS: Registry[Layout] = Registry("layout")


def quantized_tensors(model: torch.nn.Module, steps: Sequence[int]) -> list[CodedTensor]:
    """Quantize every parameter (canonical ``parameters()`` order) with its step index."""
    params = list(model.parameters())
    if len(params) != len(steps):
        raise ValueError(f"{len(steps)} step indices for {len(params)} parameter tensors")
    return [CodedTensor(i, s, quant.quantize(p.detach().cpu().numpy().ravel(), s))
            for i, (p, s) in enumerate(zip(params, steps))]


def load_quantized(model: torch.nn.Module, tensors: Sequence[CodedTensor],
                   masks: Sequence[Optional[np.ndarray]] = ()) -> torch.nn.Module:
    """Fill ``model``'s parameters from coded tensors, checking they match the architecture.

    Args:
        masks: per parameter, None (the tensor holds every value) or a flat bool keep mask: the
            tensor then holds only the kept values, in C order, and the others are zero.

    Raises:
        FormatError: wrong tensor count, order, symbol count or step index.
    """
    params = list(model.parameters())
    masks = list(masks) or [None] * len(params)
    if len(tensors) != len(params):
        raise FormatError(f"TDAT holds {len(tensors)} tensors, the architecture has {len(params)}")
    with torch.no_grad():
        for i, (t, p, m) in enumerate(zip(tensors, params, masks)):
            if t.index != i:
                raise FormatError(f"TDAT tensor #{i} has index {t.index}, expected {i}")
            if m is None and t.symbols.size != p.numel():
                raise FormatError(f"TDAT tensor {i} has {t.symbols.size} values, the architecture needs {p.numel()}")
            if not 0 <= t.step < quant.N_STEPS:
                raise FormatError(f"TDAT tensor {i}: step index {t.step} outside [0, {quant.N_STEPS - 1}]")
            values = quant.dequantize(t.symbols, t.step)
            if m is not None:
                kept = int(np.count_nonzero(m))
                if m.size != p.numel():
                    raise FormatError(f"MASK of tensor {i} has {m.size} bits, the architecture needs {p.numel()}")
                if t.symbols.size != kept:
                    raise FormatError(f"TDAT tensor {i} has {t.symbols.size} values, its MASK keeps {kept}")
                full = np.zeros(p.numel(), np.float32)
                full[m] = values
                values = full
            p.copy_(torch.from_numpy(values).view_as(p))
    return model


@dataclass(frozen=True)
class DenseRepresentation:
    """Every weight quantized with its tensor's table step and entropy-coded in one TDAT chunk."""

    name: ClassVar[str] = "dense"
    wire_id: ClassVar[int] = 0

    def export(self, model: torch.nn.Module, steps: Sequence[int],
               masks: Sequence[Optional[np.ndarray]] = ()) -> list[Chunk]:
        if any(m is not None for m in masks):
            raise ValueError("the dense representation stores no masks; use representation='pruned'")
        return [Chunk(b"TDAT", encode_tensors(quantized_tensors(model, steps)))]

    def materialize(self, model: torch.nn.Module, chunks: Sequence[Chunk]) -> torch.nn.Module:
        tdat = [c for c in chunks if c.ctype == b"TDAT"]
        if len(tdat) != 1:
            raise FormatError(f"dense stream needs exactly one TDAT chunk, found {len(tdat)}")
        if any(c.ctype == b"MASK" for c in chunks):
            raise FormatError("dense stream has a MASK chunk (only NHDR.representation=1, pruned, uses masks)")
        n_values = sum(p.numel() for p in model.parameters())
        return load_quantized(model, decode_tensors(tdat[0].data, max_symbols=n_values))


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

    def export(self, model: torch.nn.Module, steps: Sequence[int],
               masks: Sequence[Optional[np.ndarray]] = ()) -> list[Chunk]:
        params = list(model.parameters())
        if len(masks) != len(params):
            raise ValueError(f"the pruned representation needs one mask entry per parameter tensor "
                             f"({len(params)}), got {len(masks)}; fit with a PruneConfig")
        if len(steps) != len(params):
            raise ValueError(f"{len(steps)} step indices for {len(params)} parameter tensors")
        coded_masks, tensors = [], []
        for i, (p, s, m) in enumerate(zip(params, steps, masks)):
            values = p.detach().cpu().numpy().ravel()
            if m is not None:
                m = np.asarray(m, dtype=bool).reshape(-1)
                if m.size != values.size:
                    raise ValueError(f"mask {i} has {m.size} entries, parameter {i} has {values.size}")
                coded_masks.append(CodedMask(i, m.reshape(p.shape[0], -1) if p.ndim >= 2 and p.numel() else m))
                values = values[m]
            tensors.append(CodedTensor(i, s, quant.quantize(values, s)))
        return [Chunk(b"MASK", encode_masks(coded_masks)), Chunk(b"TDAT", encode_tensors(tensors))]

    def materialize(self, model: torch.nn.Module, chunks: Sequence[Chunk]) -> torch.nn.Module:
        mask_chunks = [c for c in chunks if c.ctype == b"MASK"]
        tdat = [c for c in chunks if c.ctype == b"TDAT"]
        if len(mask_chunks) != 1 or len(tdat) != 1:
            raise FormatError(f"pruned stream needs exactly one MASK and one TDAT chunk, "
                              f"found {len(mask_chunks)} and {len(tdat)}")
        params = list(model.parameters())
        sizes = [p.numel() for p in params]
        masks: list[Optional[np.ndarray]] = [None] * len(params)
        for cm in decode_masks(mask_chunks[0].data, sizes=sizes, max_bits=sum(sizes)):
            masks[cm.index] = cm.flat
        return load_quantized(model, decode_tensors(tdat[0].data, max_symbols=sum(sizes)), masks)


@dataclass(frozen=True)
class SingleLayout:
    """The whole signal in one segment (no SEGM chunk)."""

    name: ClassVar[str] = "single"
    wire_id: ClassVar[int] = 0
    n_segments: ClassVar[int] = 1


REPRESENTATIONS.register(DenseRepresentation())
REPRESENTATIONS.register(PrunedRepresentation())
LAYOUTS.register(SingleLayout())
