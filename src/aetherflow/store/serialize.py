"""Values as JSON for persistent stores (pydantic models included); pickle only when asked.

Secrets stay secret: pydantic serialises `SecretStr`/`SecretBytes` as ``"**********"``, so
their plain value never reaches a table or a file; a store's ``redact=`` hook handles others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..errors import NodeOutputError
from .base import Store

_SCALARS = frozenset({str, int, bool})  # not float: NaN and infinity are not JSON
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def to_json(value: Any) -> str:
    """JSON text of ``value``; plain data takes the C encoder, the rest goes through pydantic."""
    try:
        return _encode(value)
    except (TypeError, ValueError):
        return _encode(to_jsonable_python(value))


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def value_checker(store: Store) -> Callable[[Any, str, str], None] | None:
    """For a JSON store, a function that fails a node whose value JSON cannot hold."""
    if not store.persistent or getattr(store, "pickle", False):
        return None

    def check(value: Any, node: str, what: str) -> None:
        if value is None or type(value) in _SCALARS:
            return  # always storable: skip the trial encoding
        try:
            to_json(value)
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            raise NodeOutputError(
                f"its {what} {type(value).__name__} cannot be stored as JSON in {store.url}: {exc}. "
                "Return JSON-able data (dicts, lists, str, numbers, pydantic models), or open the "
                "store with pickle=True if you trust everyone who can write to it.",
                node=node,
            ) from exc

    return check
