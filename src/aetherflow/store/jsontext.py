"""Values as the text a database column holds: JSON, text every database accepts, and
secrets masked before a value is pickled.

NaN and ±infinity are written as the ``NaN``/``Infinity`` tokens Python's json module
reads back, so a float means the same on every store. Plain data takes the C encoder;
anything else (a pydantic model, a dataclass, a datetime) goes through pydantic.

pydantic is imported inside the functions that may need it, never with this module: the
SQL stores import it, and reading a store's history (`aetherflow jobs`, `show`, `stats`)
never serialises a model. A value that is not plain data comes from a node, and a process
that runs nodes has pydantic loaded already (`serialize.py`, which the worker imports).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=True).encode


def to_json(value: Any) -> str:
    """JSON text of ``value``; plain data takes the C encoder, the rest goes through pydantic.

    The text is ASCII (``ensure_ascii``): a lone surrogate or a NUL in a string becomes a
    ``\\udcff``/``\\u0000`` escape, which every database can hold and `from_json` restores.
    """
    try:
        return _encode(value)
    except (TypeError, ValueError):
        from pydantic_core import to_jsonable_python  # only a value that is not plain data can need it

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


# -- secrets ----------------------------------------------------------------------------------


def redact_secrets(value: Any) -> Any:
    """``value`` with every `SecretStr`/`SecretBytes` inside it replaced by a masked one.

    JSON needs none of this (pydantic masks secrets when it serialises); pickle keeps
    objects as they are, so a pickling store calls this first.
    """
    from pydantic import BaseModel, SecretBytes, SecretStr

    from ..redaction import SECRET_MASK

    def redacted(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return SecretStr(SECRET_MASK)
        if isinstance(value, SecretBytes):
            return SecretBytes(SECRET_MASK.encode())
        if isinstance(value, dict):
            return {k: redacted(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [redacted(v) for v in value]
            if isinstance(value, tuple) and hasattr(value, "_fields"):
                return type(value)(*items)  # a named tuple
            return type(value)(items) if type(value) in (list, tuple, set, frozenset) else items
        if isinstance(value, BaseModel):
            return value.model_copy(update={name: redacted(getattr(value, name)) for name in type(value).model_fields})
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            try:
                return dataclasses.replace(
                    value, **{f.name: redacted(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
                )
            except Exception:  # noqa: BLE001 - a dataclass that cannot be rebuilt: store what JSON would
                from pydantic_core import to_jsonable_python

                return to_jsonable_python(value, fallback=repr)
        return value

    return redacted(value)
