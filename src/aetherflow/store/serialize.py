"""Values a persistent store keeps, checked and restored through annotations (pydantic).

Secrets stay secret: pydantic serialises `SecretStr`/`SecretBytes` as ``"**********"``, so
their plain value never reaches a table or a file; with pickle they are replaced before
pickling (`jsontext.redact_secrets`); a store's ``redact=`` hook handles other values.

A value comes back from JSON as plain data (lists, dicts with text keys, ISO text for
times); `restore` turns it back into what an annotation says it is. The text itself is
made in `jsontext.py`, which the SQL stores import without pydantic.

The worker imports this module, and with it pydantic: it loads when a worker is made, not
during its first job (a job that `submit` returned must be recorded at once).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError

from ..errors import NodeOutputError
from ..redaction import SECRET_MASK, mentions_secret
from .base import Store
from .jsontext import to_json

_SCALARS = frozenset({str, int, bool})  # floats too, now that NaN and infinity are stored


def is_iterator(value: Any) -> bool:
    """Whether a value is a one-shot iterator (a generator, ``map``, ``zip``, a file...)."""
    return isinstance(value, Iterator)


def value_checker(store: Store) -> Callable[[Any, str, str], None] | None:
    """For a persistent store, a function that fails a node whose value it cannot hold."""
    if not store.persistent:
        return None
    pickled = bool(getattr(store, "pickle", False))

    def check(value: Any, node: str, what: str) -> None:
        if value is None or type(value) in _SCALARS or type(value) is float:
            return  # always storable: skip the trial encoding
        if is_iterator(value):
            # Encoding it would consume it: the next node would receive an empty iterator.
            raise NodeOutputError(
                f"its {what} is a one-shot iterator ({type(value).__name__}), which {store.url} cannot store "
                "without consuming it. Return a list (e.g. `return list(...)`) instead of a generator or iterator.",
                node=node,
            )
        if pickled:
            return
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


# -- reading values back as what they were -----------------------------------------------


def restore(value: Any, annotation: Any) -> Any:
    """``value`` as loaded from a store, validated back through ``annotation`` (lax mode).

    A ``set[int]`` stored as a JSON list comes back a set, an ISO text a ``datetime``, the
    text keys of a ``dict[int, str]`` ints, a dict a pydantic model. Without a usable
    annotation, or when the value does not fit it, the value is returned as loaded.
    """
    if value is None or annotation is None or annotation is Any or annotation is typing.Any:
        return value
    adapter = _adapter(annotation)
    if adapter is None:
        return value
    try:
        return adapter.validate_python(value)
    except Exception:  # noqa: BLE001 - restoring is best effort: the raw value still means something
        return value


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        return _cached_adapter(annotation)
    except TypeError:  # an unhashable annotation: build it each time
        return _build_adapter(annotation)


@lru_cache(maxsize=512)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any] | None:
    return _build_adapter(annotation)


def _build_adapter(annotation: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(annotation)
    except Exception:  # noqa: BLE001 - not a type pydantic knows (an arbitrary class): keep raw
        return None


def storable_input(value: Any, annotation: Any) -> Any:
    """A job input as a store may keep it, given the annotation of the parameter reading it.

    For an annotation that holds a secret, the input is validated through it and kept as
    pydantic serialises the result (secrets masked); an input that does not validate is
    kept as the mask alone, as nothing about it can be told safely.
    """
    if not mentions_secret(annotation):
        return value
    adapter = _adapter(annotation)
    if adapter is None:
        return SECRET_MASK
    try:
        return adapter.dump_python(adapter.validate_python(value), mode="json")
    except Exception:  # noqa: BLE001 - an invalid secret: its text must not reach the store
        return SECRET_MASK
