"""The torch modules the encoder fits (and the float32 renderer of format 1.x files uses).

The architecture registry lives in :mod:`nfcodec.archs` (no torch); these are the networks its
``build`` hooks create.  The decoder of format 2.0 never uses them: it runs the exact programs
of :mod:`nfcodec.archs` instead.
"""
from __future__ import annotations

from .nerv import Nerv
from .siren import Siren

__all__ = ["Siren", "Nerv"]
