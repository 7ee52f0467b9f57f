"""Stores, selected by URL: ``memory://``, ``sqlite:///path.db``, ``postgresql://...``."""

from __future__ import annotations

from typing import Any

from ..errors import StoreError, short_repr
from ..runs import RunFacts, RunFields
from .base import Progress, Store
from .memory import MemoryStore
from .records import EventRecord, FlowStats, JobRecord, NodeRunRecord, NodeStats, StateRecord

__all__ = [
    "EventRecord",
    "FlowStats",
    "JobRecord",
    "MemoryStore",
    "NodeRunRecord",
    "NodeStats",
    "Progress",
    "RunFacts",
    "RunFields",
    "StateRecord",
    "Store",
    "open_store",
]


def open_store(url: str = "memory://", **options: Any) -> Store:
    """Open the store a URL names.

    >>> open_store("sqlite:///.aetherflow/runs.db").jobs(status="failed", limit=10)

    ``readonly=True`` opens a SQLite store for reading only (also what happens by itself
    when the file or its folder cannot be written).
    """
    if not isinstance(url, str) or "\x00" in url:  # issue 14: a StoreError, not an AttributeError
        raise StoreError(
            f"A store URL is a str without NUL characters, such as 'memory://' or 'sqlite:///runs.db'; found {short_repr(url)}."
        )
    durability = options.pop("durability", "sync")
    if url.startswith("memory://"):
        options.pop("readonly", None)  # nothing to protect
        return MemoryStore(**options)
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url, durability=durability, **options)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        options.pop("readonly", None)  # reading never writes there; the server enforces rights
        return PostgresStore(url, durability=durability, **options)
    raise StoreError(
        f"Unknown store URL {url!r}: expected 'memory://', 'sqlite:///relative.db', "
        "'sqlite:////absolute/path.db' or 'postgresql://user@host:port/db'."
    )
