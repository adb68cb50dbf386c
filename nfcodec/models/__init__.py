"""Architectures: the ``ARCHS`` registry maps names and wire ids to builders.

An :class:`ArchSpec` knows how to turn encoder settings into the wire record carried in the
``ARCH`` chunk, and how to build an *empty* module from that record (the decoder then fills
in the transmitted weights; it never infers hyper-parameters from tensor shapes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from torch import nn

from ..bitstream.headers import SirenArch
from ..registry import Registry
from .siren import Siren

__all__ = ["ARCHS", "ArchSpec", "Siren"]


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: its wire id, wire record class and builders."""

    name: str
    wire_id: int
    record_cls: type
    build: Callable[[Any], nn.Module]          # wire record -> empty module (canonical param order)
    make_record: Callable[..., Any]            # (model config, in_features, out_features) -> wire record

    kind: ClassVar[str] = "architecture"


ARCHS: Registry[ArchSpec] = Registry("architecture")

ARCHS.register(ArchSpec(
    name="siren",
    wire_id=0,
    record_cls=SirenArch,
    build=lambda r: Siren(r.in_features, r.out_features, r.width, r.depth, r.w0_first, r.w0_hidden),
    make_record=lambda m, i, o: SirenArch(in_features=i, out_features=o, width=m.width, depth=m.depth,
                                          w0_first=m.w0_first, w0_hidden=m.w0),
))
