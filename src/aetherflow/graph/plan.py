"""Where each parameter of each vertex comes from, for one set of provider names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import MissingInputError, UsageError, closest, short_repr
from ..node import Node
from ..sentinels import UNSET

BUILTINS = ("execution", "job_state", "node_state", "worker_state", "answer")

# Where a parameter's value comes from (see `Binding`).
B_EXECUTION, B_JOB_STATE, B_NODE_STATE, B_WORKER_STATE = 0, 1, 2, 3
B_PROVIDER, B_NODE, B_JOIN, B_ITEM, B_INPUT, B_ANSWER = 4, 5, 6, 7, 8, 9
_VALUE_KINDS = (B_NODE, B_JOIN, B_ITEM, B_INPUT, B_ANSWER)  # validated; services and other built-ins are not
_BUILTIN_KIND = dict(zip(BUILTINS, (B_EXECUTION, B_JOB_STATE, B_NODE_STATE, B_WORKER_STATE, B_ANSWER), strict=True))


def job_inputs(inputs: Any) -> dict[str, Any]:
    """A job's inputs as a new dict, or `UsageError` unless they map parameter names (str) to values."""
    if type(inputs) is dict:  # the usual case, on every job's path: no ABC check
        values = inputs.copy()
    elif inputs is None:
        return {}
    elif isinstance(inputs, Mapping):
        values = dict(inputs)
    else:
        raise UsageError(
            f"A job's inputs must be a mapping of input names to values, e.g. {{'x': 1}}; found {short_repr(inputs)}."
        )
    for key in values:
        if type(key) is not str and not isinstance(key, str):
            raise UsageError(f"A job's input names are parameter names (str); found the key {short_repr(key)}.")
    return values


@dataclass(frozen=True, slots=True)
class Binding:
    param: str
    kind: int
    key: Any  # provider name, source vertex, tuple of sources, or input name
    has_default: bool
    check: Callable[[Any], Any] | None = None  # pydantic validation, for values (not services)
    exact: type | None = None  # values of exactly this type skip `check` (see Node.checker)
    default: Any = UNSET  # the parameter's default: used when the value is absent


@dataclass(frozen=True, slots=True)
class InputSpec:
    required: bool
    nodes: tuple[str, ...]
    secret: bool


@dataclass
class VertexPlan:
    name: str
    node: Node
    index: int
    bindings: tuple[Binding, ...]
    needs: tuple[tuple[str, bool], ...]  # (source vertex, param has a default)
    uses_state: bool
    check_output: Callable[[Any], Any] | None = None
    output_exact: type | None = None


@dataclass
class Plan:
    """How each vertex's parameters are filled, for one set of provider names."""

    flow: str
    vertices: list[VertexPlan]
    inputs: dict[str, InputSpec]
    provider_names: frozenset[str]

    vertex_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.required_inputs = tuple(name for name, spec in self.inputs.items() if spec.required)
        self.secret_inputs = tuple(name for name, spec in self.inputs.items() if spec.secret)
        self.vertex_names = tuple(vp.name for vp in self.vertices)

    def check_inputs(self, values: dict[str, Any], flow: str) -> None:
        """Raise `MissingInputError` (with "did you mean" hints) if a required input is absent."""
        for name in self.required_inputs:
            if name not in values:
                break
        else:
            return
        missing = {name: list(spec.nodes) for name, spec in self.inputs.items() if spec.required and name not in values}
        known = [
            *self.vertex_names,
            *self.provider_names,
            *BUILTINS,
            *(k for k in self.inputs if k not in missing),
            *values,
        ]
        hints = {}
        for name in missing:
            near = closest(name, known)
            if near:
                hints[name] = f"Did you mean the {self._kind_of(near[0])} '{near[0]}'?"
        raise MissingInputError(flow, missing, hints)

    def _kind_of(self, name: str) -> str:
        if name in self.vertex_names:
            return "node"
        if name in self.provider_names:
            return "provider"
        return "built-in" if name in BUILTINS else "input"
