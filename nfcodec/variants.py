"""Representations and layouts: how a fitted network becomes chunks, and back.

Two registries with stable wire ids (stored in ``NHDR``):

* ``REPRESENTATIONS`` -- what is stored about the weights: ``dense`` (every weight quantized
  and entropy-coded).  ``pruned`` (1) and ``supermask`` (2) are reserved in the format.
* ``LAYOUTS`` -- how the stream is split into segments: ``single`` (0, one segment).
  ``width-chunks`` (1) is reserved.

A representation never touches bytes itself: it turns parameters into
:class:`~nfcodec.bitstream.entropy.CodedTensor` lists and the bitstream layer codes them.
The decoder side (``materialize``) is pure: no training code, no randomness.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Protocol, Sequence

import numpy as np
import torch

from . import quant
from .bitstream import Chunk, CodedTensor, FormatError, decode_tensors, encode_tensors
from .registry import Registry

__all__ = ["Representation", "Layout", "REPRESENTATIONS", "LAYOUTS", "DenseRepresentation", "SingleLayout"]


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


def load_quantized(model: torch.nn.Module, tensors: Sequence[CodedTensor]) -> torch.nn.Module:
    """Fill ``model``'s parameters from coded tensors, checking they match the architecture.

    Raises:
        FormatError: wrong tensor count, order, symbol count or step index.
    """
    params = list(model.parameters())
    if len(tensors) != len(params):
        raise FormatError(f"TDAT holds {len(tensors)} tensors, the architecture has {len(params)}")
    with torch.no_grad():
        for i, (t, p) in enumerate(zip(tensors, params)):
            if t.index != i:
                raise FormatError(f"TDAT tensor #{i} has index {t.index}, expected {i}")
            if t.symbols.size != p.numel():
                raise FormatError(f"TDAT tensor {i} has {t.symbols.size} values, the architecture needs {p.numel()}")
            if not 0 <= t.step < quant.N_STEPS:
                raise FormatError(f"TDAT tensor {i}: step index {t.step} outside [0, {quant.N_STEPS - 1}]")
            p.copy_(torch.from_numpy(quant.dequantize(t.symbols, t.step)).view_as(p))
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
        n_values = sum(p.numel() for p in model.parameters())
        return load_quantized(model, decode_tensors(tdat[0].data, max_symbols=n_values))


@dataclass(frozen=True)
class SingleLayout:
    """The whole signal in one segment (no SEGM chunk)."""

    name: ClassVar[str] = "single"
    wire_id: ClassVar[int] = 0
    n_segments: ClassVar[int] = 1


REPRESENTATIONS.register(DenseRepresentation())
LAYOUTS.register(SingleLayout())
