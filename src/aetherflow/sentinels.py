"""Sentinels for "no value" where ``None`` is a legitimate value; the kernel of the package (no imports)."""

from __future__ import annotations

from typing import Any


class _Unset:
    """Marks "no value" where ``None`` is a legitimate value (a default, an output)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"  # pickled by name: still the one sentinel after a trip to a Dask worker


class _Deleted:
    """Marks a state key deleted by a node's write-set."""

    _instance: _Deleted | None = None

    def __new__(cls) -> _Deleted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DELETED"

    def __reduce__(self) -> str:
        return "DELETED"


UNSET: Any = _Unset()
DELETED: Any = _Deleted()
