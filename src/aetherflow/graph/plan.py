"""Where each parameter of each vertex comes from, for one set of provider names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from ..errors import MissingInputError, UsageError, closest, short_repr
from ..node import Node, Param
from ..sentinels import UNSET
from .topology import Topology

BUILTINS = ("execution", "job_state", "node_state", "worker_state", "answer")


class BindingKind(IntEnum):
    """Where a parameter's value comes from (see `Binding`).

    An `IntEnum`: `invoke._arguments` tests a binding's kind once per parameter per node
    call, and members compare as fast as the ints they are.
    """

    EXECUTION = 0  # the ExecutionContext of this call
    JOB_STATE = 1  # a handle on the job's state space
    NODE_STATE = 2  # a handle on this node's state space
    WORKER_STATE = 3  # a handle on the worker's state space
    PROVIDER = 4  # a provider of the context, by name
    NODE = 5  # an upstream vertex's output (by name, or piped from the only one)
    JOIN = 6  # {tail: output} of the tails a fan_in joins
    ITEM = 7  # one item of a mapped vertex's source
    INPUT = 8  # a job input, by name
    ANSWER = 9  # the answer to this node's suspension


# The members as module constants: on Python 3.11 `BindingKind.NODE` costs ten times a global.
B_EXECUTION, B_JOB_STATE, B_NODE_STATE, B_WORKER_STATE = (
    BindingKind.EXECUTION,
    BindingKind.JOB_STATE,
    BindingKind.NODE_STATE,
    BindingKind.WORKER_STATE,
)
B_PROVIDER, B_NODE, B_JOIN, B_ITEM, B_INPUT, B_ANSWER = (
    BindingKind.PROVIDER,
    BindingKind.NODE,
    BindingKind.JOIN,
    BindingKind.ITEM,
    BindingKind.INPUT,
    BindingKind.ANSWER,
)
_VALUE_KINDS = frozenset((B_NODE, B_JOIN, B_ITEM, B_INPUT, B_ANSWER))  # validated; services and other built-ins are not
_STATE_KINDS = frozenset((B_JOB_STATE, B_NODE_STATE, B_WORKER_STATE))
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
    kind: BindingKind
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
    pipe: str | None = None  # the parameter filled by the pipe rule, if any


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


# -- binding: where each parameter comes from -------------------------------------------------


def compile_plan(topology: Topology, flow: str, providers: frozenset[str]) -> Plan:
    """Bind every vertex's parameters for a context with these provider names (nothing is checked here)."""
    inputs: dict[str, _Input] = {}
    vertices = [_bind_vertex(topology, i, providers, inputs) for i in range(len(topology.names))]
    specs = {k: InputSpec(v.required, tuple(v.nodes), v.secret) for k, v in inputs.items()}
    return Plan(flow, vertices, specs, providers)


@dataclass
class _Input:
    """A job input while the vertices reading it are bound: required if any of them requires it."""

    required: bool = False
    nodes: list[str] = field(default_factory=list)
    secret: bool = False


def _bind_vertex(t: Topology, i: int, providers: frozenset[str], inputs: dict[str, _Input]) -> VertexPlan:
    """A parameter's name decides first; the pipe rule fills one left free; the rest are job inputs."""
    node, name = t.nodes[i], t.names[i]
    bindings, free = _by_name(t, i, providers)
    pipe = _pipe_param(t, i, bindings, free)
    if pipe is not None:
        bindings.append(_piped(t, i, pipe.name))
    for p in free:
        if p is pipe:
            continue
        bindings.append(Binding(p.name, B_INPUT, p.name, not p.required))
        entry = inputs.setdefault(p.name, _Input())
        entry.required = entry.required or p.required
        entry.nodes.append(name)
        entry.secret = entry.secret or node.is_secret(p.name)
    # In parameter order: the node is called with its arguments by position.
    position = {p.name: k for k, p in enumerate(node.params)}
    bound = sorted((_completed(b, node) for b in bindings), key=lambda b: position[b.param])
    needs = tuple((b.key, b.has_default) for b in bound if b.kind == B_NODE)
    uses_state = any(b.kind in _STATE_KINDS for b in bound)
    check_output, output_exact = node.checker("return") or (None, None)
    return VertexPlan(
        name, node, i, tuple(bound), needs, uses_state, check_output, output_exact, None if pipe is None else pipe.name
    )


def _by_name(t: Topology, i: int, providers: frozenset[str]) -> tuple[list[Binding], list[Param]]:
    """The bindings a parameter's name decides (a built-in, a provider, another vertex), and the parameters left free."""
    bindings: list[Binding] = []
    free: list[Param] = []
    own, upstream = t.names[i], t.explicit[i]
    for p in t.nodes[i].params:
        has_default = not p.required
        if p.name in _BUILTIN_KIND:
            bindings.append(Binding(p.name, _BUILTIN_KIND[p.name], None, has_default))
        elif p.name in providers:
            bindings.append(Binding(p.name, B_PROVIDER, p.name, has_default))
        elif p.name in t.index and p.name != own:
            # A mapped vertex naming its source gets one item of it, not the whole output.
            kind = B_ITEM if t.mapped[i] and t.index[p.name] in upstream else B_NODE
            bindings.append(Binding(p.name, kind, p.name, has_default))
        else:
            free.append(p)
    return bindings, free


def _pipe_param(t: Topology, i: int, bindings: list[Binding], free: list[Param]) -> Param | None:
    """The pipe rule: a vertex's one required free parameter receives what its explicit predecessors give.

    Not when it has no explicit predecessor, or is mapped and already names its source.
    """
    required = [p for p in free if p.required]
    if len(required) != 1 or not t.explicit[i] or any(b.kind == B_ITEM for b in bindings):
        return None
    return required[0]


def _piped(t: Topology, i: int, param: str) -> Binding:
    """The piped parameter's binding: one item (mapped), the output (one source), or ``{tail: output}`` (a join)."""
    upstream = t.explicit[i]
    if t.mapped[i]:
        return Binding(param, B_ITEM, t.names[upstream[0]], False)
    if len(upstream) == 1 and not t.join[i]:
        return Binding(param, B_NODE, t.names[upstream[0]], False)
    return Binding(param, B_JOIN, tuple(t.names[u] for u in upstream), False)


def _completed(b: Binding, node: Node) -> Binding:
    """``b`` with its parameter's default, and its validator if it carries a value."""
    check, exact = (node.checker(b.param) or (None, None)) if b.kind in _VALUE_KINDS else (None, None)
    return replace(b, check=check, exact=exact, default=node.param(b.param).default)
