"""The one registry mechanism of the project: variants looked up by name or by stable wire id.

Every kind of variant -- architectures, ARCH records, representations, layouts (the ``nfcodec``
side) and entropy models and mask coders (this package) -- is a :class:`Registry` instance.

A wire id is declared exactly once:

* for the kinds that ``NHDR`` names (architectures, representations, layouts), in the format's
  id table of :mod:`.headers` (``ARCHS``, ``REPRESENTATIONS``, ``LAYOUTS``), which is also what
  ``docs/format.md`` lists.  A registry built with ``ids=`` gives each entry the wire id its
  ``name`` has in that table (and refuses names the format does not know);
* for the others (entropy models, mask coders), on the variant class (``wire_id``), next to
  the code that reads and writes its bytes.

Ids, once shipped, are never reused or renumbered (``tests/test_registry.py`` pins them).  This
module imports nothing from torch or ``nfcodec``; callers choose the exception types.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Generic, Iterator, Mapping, Optional, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name and wire-id lookup for one kind of variant.

    Args:
        kind: what the entries are, for messages ("representation").
        ids: the format's id table (wire id -> name) when the ids are declared there.
        unknown_name: exception type for :meth:`by_name` misses (encoder side: a setting).
        unknown_id: exception type for :meth:`by_id` misses (decoder side: a file).
    """

    def __init__(self, kind: str, *, ids: Optional[Mapping[int, str]] = None,
                 unknown_name: Callable[[str], Exception] = ValueError,
                 unknown_id: Callable[[str], Exception] = ValueError) -> None:
        self.kind = kind
        self._ids = {name: wire_id for wire_id, name in ids.items()} if ids is not None else None
        self._unknown_name, self._unknown_id = unknown_name, unknown_id
        self._by_name: dict[str, T] = {}
        self._by_id: dict[int, T] = {}
        #: Read-only views (name -> entry, wire id -> entry), in registration order.
        self.by_name_map: Mapping[str, T] = MappingProxyType(self._by_name)
        self.by_id_map: Mapping[int, T] = MappingProxyType(self._by_id)

    def register(self, entry: Any) -> Any:
        """Add ``entry`` (an instance, or a class: one instance of it is added and the class is
        returned, so this works as a class decorator).  The entry needs a ``name``; its
        ``wire_id`` comes from the id table when there is one (and is set on the entry)."""
        instance = entry() if isinstance(entry, type) else entry
        name = instance.name
        if self._ids is not None:
            if name not in self._ids:
                raise RuntimeError(f"{self.kind} {name!r} has no wire id in the format's table")
            wire_id = self._ids[name]
            declared = getattr(instance, "wire_id", None)
            if declared is not None and declared >= 0 and declared != wire_id:
                raise RuntimeError(f"{self.kind} {name!r} declares wire id {declared}, the format says {wire_id}")
            object.__setattr__(instance, "wire_id", wire_id)   # frozen dataclasses too
        else:
            wire_id = instance.wire_id
        if name in self._by_name or wire_id in self._by_id:
            raise RuntimeError(f"{self.kind} {name!r} / wire id {wire_id} registered twice")
        self._by_name[name] = self._by_id[wire_id] = instance
        return entry

    def by_name(self, name: str) -> T:
        try:
            return self._by_name[name]
        except KeyError:
            raise self._unknown_name(f"unknown {self.kind} {name!r} (choose from {', '.join(self.names())})") from None

    def by_id(self, wire_id: int) -> T:
        try:
            return self._by_id[wire_id]
        except KeyError:
            raise self._unknown_id(f"file uses {self.kind} wire id {wire_id}, which this decoder does not support") from None

    def names(self) -> list[str]:
        return list(self._by_name)

    def wire_ids(self) -> dict[str, int]:
        return {n: e.wire_id for n, e in self._by_name.items()}  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[T]:
        return iter(self._by_name.values())
