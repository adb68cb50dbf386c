"""Architectures: the ``ARCHS`` registry maps names and wire ids to :class:`ArchSpec` entries.

An architecture is one module of this package plus its registration.  Its spec holds

* decoder hooks (no torch): ``check`` (record vs stream header), ``param_shapes`` (the canonical
  parameter order), ``costs`` (per-frame multiply-adds and peak activation bytes, for the
  decoder's limits), and ``program`` (the exact decoding program of format 2.0, run by the
  numpy and torch backends of :mod:`nfcodec.exact`);
* ``init_laws`` (no torch): the random law of every parameter (:class:`nfcodec.exact.rng.Law`),
  from which the supermask representation regenerates frozen weights;
* encoder hooks: ``make_record`` (settings + header -> wire record), ``build`` (an empty torch
  module to fit, imported lazily), ``sampler`` (training batches) and ``legacy_render`` (the
  float32 renderer of format 1.x files).

The decoder never infers hyper-parameters from tensor shapes: shapes come from the record and
are checked against the file.  ``tests/test_registry.py`` pins the wire ids and runs every
registered architecture x representation through the codec.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional, Sequence

import numpy as np

from ..bitstream import headers
from ..registry import Registry, variant_registry

__all__ = ["ARCHS", "ArchSpec", "Costs", "Growth", "param_count", "ACTIVATION_WORK", "WIDE_ACTIVATION_WORK", "WIDE_LAYER"]


#: Work of one activation (the affine step, the table lookup and their passes over memory) in
#: multiply-add equivalents: on the numpy backend (2-core AVX2 machine) a float64 GEMM
#: multiply-add takes ~0.045 ns and one activation's elementwise passes ~1.2 ns, i.e. ~27 ...
ACTIVATION_WORK = 32
#: ... while in layers wider than :data:`WIDE_LAYER` units a tile no longer fits the caches and
#: the same passes run at memory speed (~4 ns measured on a 4096-wide SIREN layer).
WIDE_ACTIVATION_WORK = 128
WIDE_LAYER = 512


@dataclass(frozen=True)
class Costs:
    """What rendering one frame costs, computed from the records alone (nothing allocated).

    Attributes:
        macs: multiply-adds of one frame.
        activations: activation values computed for one frame (every layer's outputs).
        peak_bytes: largest working memory of one frame in the reference backends (feature
            maps, tiles and the output frame).
    """

    macs: int
    activations: int
    peak_bytes: int
    wide_activations: int = 0        # the activations of layers wider than WIDE_LAYER units

    @property
    def work(self) -> int:
        """Multiply-add equivalents of one frame (what the decoder's frame limit bounds)."""
        narrow = self.activations - self.wide_activations
        return self.macs + ACTIVATION_WORK * narrow + WIDE_ACTIVATION_WORK * self.wide_activations


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its name, wire record class and the hooks listed in the module doc.

    ``wire_id`` is set by the registry from the format's id table (``NHDR.arch``)."""

    name: str
    record_cls: type
    make_record: Callable[[Any, Any], Any]                 # (model config, header) -> wire record
    check: Callable[[Any, Any], None]                      # record vs header; FormatError
    param_shapes: Callable[[Any], list[tuple[int, ...]]]   # record -> canonical parameter shapes
    costs: Callable[[Any, Any], Costs]                     # (record, header) -> per-frame costs
    program: Callable[[Any, Any, Sequence[Any]], Any]      # (record, header, QTensors) -> exact program
    build: Callable[[Any], Any]                            # record -> empty torch module (encoder, legacy)
    sampler: Callable[[Any, np.ndarray, Any, Any], Any]    # encoder: training batches
    legacy_render: Callable[[Any, Any, Any, int], np.ndarray]  # format 1.x float32 renderer
    init_laws: Callable[[Any], list[Any]]                  # record -> random law per parameter
    pixelwise: bool = False     # pixels render independently (a subset costs only its pixels)
    growth: Any = None          # Growth: how the network grows in width (layout width-chunks), or None
    # encoder: an architecture with its own trainer (the grid's rate-distortion fit) encodes the
    # single layout itself: (frames, media, fps, config, **encode_single's keywords) -> EncodeResult
    encoder: Optional[Callable[..., Any]] = None
    representations: Optional[tuple[str, ...]] = None   # the representations it supports (None: all)
    layouts: Optional[tuple[str, ...]] = None           # the layouts it supports (None: all)
    media: tuple[int, ...] = (0, 1)                     # the NHDR.media it codes (0 image, 1 video)

    wire_id: int = -1           # from the format's table, set at registration
    kind: ClassVar[str] = "architecture"

    def check_variant(self, representation: str, layout: str) -> None:
        """ConfigError unless this architecture can be coded with ``representation`` and ``layout``."""
        from ..errors import ConfigError

        for kind, name, allowed in (("representation", representation, self.representations),
                                    ("layout", layout, self.layouts)):
            if allowed is not None and name not in allowed:
                raise ConfigError(f"arch {self.name} supports {kind} {', '.join(allowed)}, not {name}")


@dataclass(frozen=True)
class Growth:
    """How an architecture grows in width, level by level (layout ``width-chunks``, format.md 4b).

    ``narrow(record, width)`` is the record of the sub-network of ``width`` hidden units;
    ``slices(record, a, b)`` lists, for the network of ``record`` (width ``b`` or more), the parts
    of the parameter tensors that units ``[a, b)`` add: ``(tensor index, per-dimension slices)``
    in the order a level stores them.  What no level adds is a structural zero.
    """

    narrow: Callable[[Any, int], Any]
    slices: Callable[[Any, int, int], list[tuple[int, tuple[slice, ...]]]]
    #: Every level adds whole tensors (the grid's latent planes): a tensor is decoded as its one
    #: part codes it, at its own step, and a tensor no level has added yet is zeros at step 0
    #: (no power-of-two step unification: format.md 4b "Latent levels").
    whole: bool = False
    #: The encoder of this architecture in the width-chunks layout (same signature as
    #: ``ArchSpec.encoder``), or None for the generic one (:func:`nfcodec.grow.encode_grown`).
    encode: Optional[Callable[..., Any]] = None
    #: What a level's "width" counts, as ``nfc info`` names it: hidden units, or the grid's planes.
    unit: str = "width"


def param_count(shapes: Sequence[tuple[int, ...]]) -> int:
    """Total number of parameters (Python ints: no overflow for absurd records)."""
    return sum(math.prod(s) for s in shapes)


ARCHS: Registry[ArchSpec] = variant_registry("architecture", headers.ARCHS)

from . import nerv, siren  # noqa: E402,F401  (each module registers itself)
from . import grid, grid_video  # noqa: E402,F401
