"""One instance per variant class, looked up by wire id or by name (the bitstream's registries).

The entropy models (TDAT) and the mask coders (MASK) each keep one of these; the decoder reads a
wire id and asks ``by_id``, the encoder walks ``by_name`` in registration (= wire id) order.
(``nfcodec.registry`` does the same for the torch side; this one stays free of it and raises
plain ``ValueError`` at import time, when a wire id is reused.)
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Generic, Mapping, TypeVar

__all__ = ["WireTable"]

T = TypeVar("T")


class WireTable(Generic[T]):
    """``register`` is a class decorator that adds one instance of the class."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.by_id: dict[int, T] = {}
        self._by_name: dict[str, T] = {}
        self.by_name: Mapping[str, T] = MappingProxyType(self._by_name)

    def register(self, cls: type[T]) -> type[T]:
        wire_id, name = cls.wire_id, cls.name  # type: ignore[attr-defined]
        if wire_id in self.by_id or name in self._by_name:
            raise ValueError(f"{self.kind} {name} / wire id {wire_id} already registered")
        self.by_id[wire_id] = self._by_name[name] = cls()
        return cls
