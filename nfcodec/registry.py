"""Small registries with stable wire ids.

Every variant (architecture, representation, layout) declares its own wire id next to its
class.  Ids are part of the file format: once shipped, an id is never reused or renumbered
(``tests/test_registry.py`` pins the tables).
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from .errors import ConfigError, UnsupportedFeatureError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name and wire-id lookup for one kind of variant."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._by_name: dict[str, T] = {}
        self._by_id: dict[int, T] = {}

    def register(self, entry: T) -> T:
        """Add ``entry`` (needs ``name`` and ``wire_id`` attributes); usable as a decorator."""
        name, wire_id = entry.name, entry.wire_id  # type: ignore[attr-defined]
        if name in self._by_name or wire_id in self._by_id:
            raise RuntimeError(f"{self.kind} {name!r} / wire id {wire_id} registered twice")
        self._by_name[name] = entry
        self._by_id[wire_id] = entry
        return entry

    def by_name(self, name: str) -> T:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r} (choose from {', '.join(self.names())})") from None

    def by_id(self, wire_id: int) -> T:
        try:
            return self._by_id[wire_id]
        except KeyError:
            raise UnsupportedFeatureError(
                f"file uses {self.kind} wire id {wire_id}, which this decoder does not support"
            ) from None

    def names(self) -> list[str]:
        return list(self._by_name)

    def wire_ids(self) -> dict[str, int]:
        return {n: e.wire_id for n, e in self._by_name.items()}  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[T]:
        return iter(self._by_name.values())
