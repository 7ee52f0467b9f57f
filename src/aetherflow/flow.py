"""`Flow`: build a graph of nodes fluently (`then`, `fan_out_to`, `map`, ...) or explicitly.

Fluent methods return a new `Flow` that remembers its parent and one building step, so
each step costs O(1) and a 10,000-node chain builds in linear time; the graph itself is
materialised once, on first use, by replaying the steps. The explicit methods (`add`,
`connect`, `branch`) change the flow they are called on and return it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import FlowDefinitionError, UsageError, short_repr
from .graph import Graph, GraphSpec
from .node import Node

if TYPE_CHECKING:
    from .worker import Worker

_Step = Callable[[GraphSpec], None]


class Flow:
    """A graph of nodes, run as jobs by a `Worker`.

    >>> flow = load.then(clean).then(count)                  # chain
    >>> flow = source.fan_out_to([a, b]).fan_in(merge)        # parallel branches + join
    >>> flow = Flow([load, clean, count], name="etl")         # edges from parameter names
    >>> flow = Flow("loop"); flow.add(a); flow.branch(a, {True: a, False: end})
    """

    def __init__(
        self,
        nodes: Sequence[Node] | str | None = None,
        *,
        name: str | None = None,
        context: Any = None,
    ) -> None:
        self._parent: Flow | None = None
        self._steps: list[_Step] = []
        self._spec: GraphSpec | None = None
        self._graph: Graph | None = None
        if name is not None:
            _check_name(name, "Flow(..., name=...)")
        if context is not None:
            context_providers(context, "Flow(..., context=...)")
        self.context = context
        if isinstance(nodes, str):
            self._name: str | None = name or _check_name(nodes, "Flow(name)")
        else:
            self._name = name
            for n in _node_list(nodes, name or "Flow([...])"):
                self._steps.append(_add_step(n))

    # -- identity --------------------------------------------------------------------

    @property
    def name(self) -> str:
        if self._name is None:  # a fluent flow is named after its first node
            self._name = self._inherited_name()
        return self._name

    def named(self, name: str) -> Flow:
        """This flow under another name (names key `worker_state` and history)."""
        return self._child(None, name=_check_name(name, "named(...)"))

    def __repr__(self) -> str:
        return f"<Flow {self.name}: {len(self.spec.vertices)} nodes>"

    # -- fluent building (each returns a new Flow) ---------------------------------------

    def then(self, nxt: Node | Flow) -> Flow:
        """Run ``nxt`` after this flow's last node(s); a single parameter receives the output."""
        if isinstance(nxt, Flow):
            return self._child(lambda s: s.append_flow(nxt.spec))
        n = _as_node(nxt)
        return self._child(lambda s: s.chain(n))

    def fan_out_to(self, nodes: Sequence[Node]) -> Flow:
        """Run every node of ``nodes`` after this flow's last node, in parallel."""
        ns = _as_nodes(nodes, self.name)
        return self._child(lambda s: s.fan_out(ns))

    def fan_in(self, join: Node) -> Flow:
        """Join the parallel tails; a single free parameter receives ``{tail: output}``."""
        n = _as_node(join)
        return self._child(lambda s: s.fan_in(n))

    def map(self, each: Node) -> Flow:
        """Run ``each`` once per item of the last node's output; its output is the list."""
        n = _as_node(each)
        return self._child(lambda s: s.map(n))

    def branch_on(self, targets: Mapping[Any, Node], *, default: Node | None = None) -> Flow:
        """Choose one successor by the last node's output; a target already upstream loops."""
        ts = {k: _as_node(v) for k, v in _targets(targets, "branch_on", self.name).items()}
        d = _as_node(default) if default is not None else None
        return self._child(lambda s: s.branch_on(ts, d))

    def repeat(self, times: int) -> Flow:
        """Run the last node ``times`` times in all, each output feeding the next run."""
        if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_REPEAT:
            raise FlowDefinitionError(
                self.name,
                [
                    f"repeat(times) needs an int from 1 to {MAX_REPEAT:,}, got {short_repr(times)}; "
                    "to loop more often, use branch_on({...: upstream_node}) (bounded by max_iterations)."
                ],
            )
        return self._child(lambda s: s.repeat(times))

    # -- explicit building (changes this flow) --------------------------------------------

    def add(self, *nodes: Node) -> Flow:
        for n in nodes:
            self._mutate(_add_step(_as_node(n)))
        return self

    def connect(self, src: Node | str, dst: Node | str) -> Flow:
        src, dst = _as_ref(src), _as_ref(dst)
        self._mutate(lambda s: s.connect(src, dst))
        return self

    def branch(
        self, switch: Node | str, targets: Mapping[Any, Node | str], *, default: Node | str | None = None
    ) -> Flow:
        switch = _as_ref(switch)
        refs = {k: _as_ref(t) for k, t in _targets(targets, "branch", self.name).items()}
        fallback = _as_ref(default) if default is not None else None
        self._mutate(lambda s: s.branch(switch, refs, fallback))
        return self

    # -- the graph -------------------------------------------------------------------------

    @property
    def spec(self) -> GraphSpec:
        if self._spec is None:
            self._spec = self._materialise()
        return self._spec

    @property
    def graph(self) -> Graph:
        """The validated graph; raises `FlowDefinitionError` listing every problem."""
        if self._graph is None:
            self._graph = Graph(self.name, self.spec)
        return self._graph

    def validate(self, context: Any = None) -> None:
        """Run every build-time check, with ``context``'s providers (else the flow's)."""
        self.graph.bind(context_providers(context if context is not None else self.context, "validate(context)"))

    @property
    def inputs(self) -> dict[str, bool]:
        """Each job input the flow reads, mapped to whether it is required."""
        plan = self.graph.bind(context_providers(self.context, "Flow(..., context=...)"))
        return {name: spec.required for name, spec in plan.inputs.items()}

    def to_mermaid(self) -> str:
        from .viz import to_mermaid

        return to_mermaid(self.spec)

    def to_dot(self) -> str:
        from .viz import to_dot

        return to_dot(self.spec, self.name)

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        context: Any = None,
        worker: Worker | None = None,
    ) -> Any:
        """Run one job and return its output (the sink's, or ``{sink: output}``)."""
        w = self._worker_for(inputs, context, worker, "run")
        return w.run(self, inputs, context=context)

    async def arun(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        context: Any = None,
        worker: Worker | None = None,
    ) -> Any:
        """`run` for asyncio code: awaits the job without blocking the event loop."""
        w = self._worker_for(inputs, context, worker, "arun")
        job = w.submit(self, inputs, context=context)
        return await asyncio.wrap_future(job.future)

    # -- internals -------------------------------------------------------------------------

    def _worker_for(self, inputs: Any, context: Any, worker: Any, method: str) -> Worker:
        """The worker to run on, once `context=` and `worker=` are known to be usable (it checks inputs)."""
        from .worker import Worker, default_worker

        if context is not None:
            context_providers(context, f"{method}(context=...)")
        if worker is None:
            return default_worker()
        if not isinstance(worker, Worker):
            raise UsageError(f"{method}(worker=...) needs an aetherflow Worker, found {short_repr(worker)}.")
        return worker

    def _child(self, step: _Step | None, *, name: str | None = None) -> Flow:
        child = Flow(name=name if name is not None else self._name, context=self.context)
        child._parent = self
        if step is not None:
            child._steps.append(step)
        return child

    def _inherited_name(self) -> str:
        # Up the lineage in a loop: a 10,000-step fluent chain must not recurse.
        f = self
        while f._name is None and f._parent is not None:
            f = f._parent
        return f._name if f._name is not None else f.spec.first_name()

    def _mutate(self, step: _Step) -> None:
        self._steps.append(step)
        self._spec = None
        self._graph = None

    def _materialise(self) -> GraphSpec:
        lineage: list[Flow] = []
        f: Flow | None = self
        while f is not None:  # iterative: a 10,000-step chain must not recurse
            lineage.append(f)
            f = f._parent
        spec = GraphSpec()
        for f in reversed(lineage):
            for step in f._steps:
                step(spec)
        return spec


def _add_step(n: Node) -> _Step:
    def step(spec: GraphSpec) -> None:
        spec.add(n)

    return step


MAX_REPEAT = 100_000  # repeat(n) builds n vertices: far more is a mistake, not a flow


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{where} needs a non-empty str as the flow's name, found {short_repr(name)}.")
    return name


def context_providers(context: Any, where: str) -> frozenset[str]:
    """The provider names of a context, or `UsageError` if it is not a context at all."""
    from .context import provider_names

    try:
        return provider_names(context)
    except Exception as exc:  # whatever a non-context raises, say what a context is
        raise UsageError(
            f"{where} needs a BaseFlowContext subclass or instance (or None), found {short_repr(context)}."
        ) from exc


def as_flow(obj: Any, where: str) -> Flow:
    """A `Flow` (a `Node` is a one-node flow), or `UsageError` naming what was passed instead."""
    if isinstance(obj, Flow):
        return obj
    if isinstance(obj, Node):
        return obj.as_flow()
    raise UsageError(f"{where} needs a Flow or a @node, found {short_repr(obj)}.")


def _node_list(nodes: Any, flow: str) -> list[Node]:
    if nodes is None:
        return []
    if isinstance(nodes, (Node, Flow, Mapping)) or not isinstance(nodes, Iterable):
        raise FlowDefinitionError(
            flow, [f"Flow(...) takes a list of nodes or a name, found {short_repr(nodes)}; write Flow([a, b])."]
        )
    return [_as_node(n) for n in nodes]


def _targets(targets: Any, method: str, flow: str) -> Mapping[Any, Any]:
    if not isinstance(targets, Mapping):
        raise FlowDefinitionError(
            flow,
            [
                f"{method}(...) takes a mapping of values to nodes, e.g. {{True: ok, False: retry}}, found {short_repr(targets)}."
            ],
        )
    return targets


def _as_ref(obj: Any) -> Node | str:
    """A node, or a vertex name, for the explicit form's `connect` and `branch`."""
    if isinstance(obj, str):
        return obj
    return _as_node(obj)


def _as_nodes(nodes: Any, flow: str) -> list[Node]:
    """The nodes of ``fan_out_to([...])``: a non-empty list of nodes."""
    if isinstance(nodes, (Node, Flow, str, Mapping)) or not isinstance(nodes, Iterable):
        raise FlowDefinitionError(
            flow, [f"fan_out_to(...) takes a list of nodes, found {nodes!r}; write fan_out_to([a, b])."]
        )
    nodes = list(nodes)
    if not nodes:
        raise FlowDefinitionError(
            flow,
            ["fan_out_to([]) needs at least one node to run in parallel; give the branches, or leave the step out."],
        )
    return [_as_node(n) for n in nodes]


def _as_node(obj: Any) -> Node:
    if isinstance(obj, Node):
        return obj
    if isinstance(obj, Flow):
        raise FlowDefinitionError(
            obj.name, [f"expected a node, found the flow {obj!r}; use then(flow) to append a whole flow."]
        )
    if callable(obj):
        name = getattr(obj, "__name__", None)
        raise FlowDefinitionError(
            name if isinstance(name, str) else "?",
            [f"{short_repr(obj)} is a plain function; decorate it with @node to use it in a flow."],
        )
    raise FlowDefinitionError("?", [f"expected a @node function, found {short_repr(obj)}."])
