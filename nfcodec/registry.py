"""The registries of the ``nfcodec`` side, built on the one mechanism, :class:`bitstream.registry.Registry`.

Architectures, representations and layouts take their wire ids from the format's id tables in
:mod:`nfcodec.bitstream.headers` (declared once there, listed in ``docs/format.md``); an unknown
name is a :class:`~nfcodec.errors.ConfigError` (a setting), an unknown id an
:class:`~nfcodec.errors.UnsupportedFeatureError` (a file this decoder cannot read).
"""
from __future__ import annotations

from typing import Mapping

from .bitstream.registry import Registry
from .errors import ConfigError, UnsupportedFeatureError

__all__ = ["Registry", "variant_registry"]


def variant_registry(kind: str, ids: Mapping[int, str]) -> Registry:
    """A registry whose entries get their wire ids from the format's table ``ids``."""
    return Registry(kind, ids=ids, unknown_name=ConfigError, unknown_id=UnsupportedFeatureError)
