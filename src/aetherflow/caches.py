"""`IdentityCache`: values keyed by the identity of two objects, bounded.

CPython hands a freed object's id to the next object allocated, so a cache keyed by
``(id(a), id(b))`` that does not keep ``a`` and ``b`` alive serves one request another
request's value. This cache holds the key objects in each entry, so their ids stay
theirs while the entry exists, and drops the oldest entries past ``limit``, so a worker
that sees a new context or flow per request does not keep them all.

Why not weak references: an entry's value (injectors bound to a context's providers)
can refer back to its key (a ``Dependency`` provider holds its container), and a
`weakref.WeakKeyDictionary` entry whose value refers to its key never dies.
"""

from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class IdentityCache(Generic[V]):
    """At most ``limit`` values keyed by ``(a, b)`` by identity; the oldest entry goes first."""

    __slots__ = ("_entries", "_limit", "_lock")

    def __init__(self, limit: int) -> None:
        self._entries: dict[tuple[int, int], tuple[Any, Any, V]] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, a: Any, b: Any) -> V | None:
        """The value cached for exactly these two objects, else None; takes no lock."""
        entry = self._entries.get((id(a), id(b)))
        if entry is not None and entry[0] is a and entry[1] is b:
            return entry[2]
        return None

    def put(self, a: Any, b: Any, value: V) -> V:
        """Cache ``value`` for ``(a, b)``, holding both, and drop the oldest entries past the limit."""
        with self._lock:
            entries = self._entries
            entries[(id(a), id(b))] = (a, b, value)
            while len(entries) > self._limit:
                del entries[next(iter(entries))]
        return value

    def __len__(self) -> int:
        return len(self._entries)
