"""Values as JSON for persistent stores (pydantic models included); pickle only when asked.

Secrets stay secret: pydantic serialises `SecretStr`/`SecretBytes` as ``"**********"``, so
their plain value never reaches a table or a file; with pickle they are replaced before
pickling (`redact_secrets`); a store's ``redact=`` hook handles other values.

NaN and ±infinity are written as the ``NaN``/``Infinity`` tokens Python's json module
reads back, so a float means the same on every store. A value comes back from JSON as
plain data (lists, dicts with text keys, ISO text for times); `restore` turns it back
into what an annotation says it is.

pydantic is imported by the functions that need it, not at the top: `aetherflow jobs` and
`show` read records through this package and never serialise a model, and pydantic is
most of their start-up. A process that runs nodes has imported it already.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import NodeOutputError
from ..redaction import SECRET_MASK, mentions_secret
from .base import Store

if TYPE_CHECKING:
    from pydantic import TypeAdapter

_SCALARS = frozenset({str, int, bool})  # floats too, now that NaN and infinity are stored
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode


def to_json(value: Any) -> str:
    """JSON text of ``value``; plain data takes the C encoder, the rest goes through pydantic.

    The text is ASCII (``ensure_ascii``): a lone surrogate or a NUL in a string becomes a
    ``\\udcff``/``\\u0000`` escape, which every database can hold and `from_json` restores.
    """
    try:
        return _encode(value)
    except (TypeError, ValueError):
        from pydantic_core import to_jsonable_python

        return _encode(to_jsonable_python(value))


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def storable_text(text: str | None) -> str | None:
    """``text`` as every database can hold it: lone surrogates escaped, NUL characters replaced.

    Error messages and file names may carry both (``os.listdir`` gives ``'\\udcff'`` for
    a byte that is not UTF-8); SQLite refuses the first and PostgreSQL the second, and a
    record that cannot be written is a failure nobody hears of.
    """
    if text is None or (text.isascii() and "\x00" not in text):
        return text  # the usual case: one C-speed scan
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


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
        except (TypeError, ValueError) as exc:  # pydantic's PydanticSerializationError is a ValueError
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
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(annotation)
    except Exception:  # noqa: BLE001 - not a type pydantic knows (an arbitrary class): keep raw
        return None


# -- secrets ----------------------------------------------------------------------------------


def redact_secrets(value: Any) -> Any:
    """``value`` with every `SecretStr`/`SecretBytes` inside it replaced by a masked one.

    JSON needs none of this (pydantic masks secrets when it serialises); pickle keeps
    objects as they are, so a pickling store calls this first.
    """
    from pydantic import BaseModel, SecretBytes, SecretStr
    from pydantic_core import to_jsonable_python

    if isinstance(value, SecretStr):
        return SecretStr(SECRET_MASK)
    if isinstance(value, SecretBytes):
        return SecretBytes(SECRET_MASK.encode())
    if isinstance(value, dict):
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [redact_secrets(v) for v in value]
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*items)  # a named tuple
        return type(value)(items) if type(value) in (list, tuple, set, frozenset) else items
    if isinstance(value, BaseModel):
        return value.model_copy(
            update={name: redact_secrets(getattr(value, name)) for name in type(value).model_fields}
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return dataclasses.replace(
                value, **{f.name: redact_secrets(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
            )
        except Exception:  # noqa: BLE001 - a dataclass that cannot be rebuilt: store what JSON would
            return to_jsonable_python(value, fallback=repr)
    return value


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
