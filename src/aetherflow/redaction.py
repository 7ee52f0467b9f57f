"""What counts as a secret, and what is kept of one: shared by node definitions and stores."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr
from typing_extensions import is_typeddict  # knows typing's and typing_extensions' TypedDicts

SECRET_MASK = "**********"  # what pydantic prints for a secret, and what a store keeps of one


def mentions_secret(annotation: Any) -> bool:
    """Whether an annotation holds a secret anywhere: itself, its arguments, a model's fields."""
    return _mentions_secret(annotation, set())


def _mentions_secret(annotation: Any, seen: set[int]) -> bool:
    if id(annotation) in seen:  # a model that refers to itself
        return False
    seen.add(id(annotation))
    if annotation in (SecretStr, SecretBytes):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_mentions_secret(f.annotation, seen) for f in annotation.model_fields.values())
    if isinstance(annotation, type) and (dataclasses.is_dataclass(annotation) or is_typeddict(annotation)):
        return any(_mentions_secret(hint, seen) for hint in _field_hints(annotation).values())
    return any(_mentions_secret(arg, seen) for arg in typing.get_args(annotation))


def _field_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable forward references: judge by what is there
        return dict(getattr(cls, "__annotations__", {}))
