"""The compiled graph: spec → topology → validation → plan (the `aetherflow.graph` package)."""

from __future__ import annotations

import time

from aetherflow import Flow, node
from aetherflow.graph import GraphValidator, Topology
from aetherflow.node import Node


def _switches(n: int) -> Flow:
    """A chain of ``n`` switch nodes, each branching forward to the next."""
    nodes: list[Node] = []
    for k in range(n):

        def switch(x: int) -> bool:
            return True

        switch.__name__ = f"s{k}"
        nodes.append(node(switch))
    flow = nodes[0].as_flow()
    for k in range(1, n):
        flow = flow.branch_on({True: nodes[k]})
    return flow


def test_graph_of_many_switches_builds_in_linear_time() -> None:
    """Telling a branch's loops from its forward edges does not grow with the square of the flow's size."""
    flow = _switches(4000)
    assert len(flow.spec.vertices) == 4000  # the fluent steps, replayed: not what this test times
    started = time.perf_counter()
    graph = flow.graph
    elapsed = time.perf_counter() - started
    assert len(graph.names) == 4000
    # Quadratic, this took ~24 s (4000 misses of an ancestry cache, each rebuilding every
    # vertex's predecessor list); linear, it takes well under a second.
    assert elapsed < 3.0, f"building the graph of 4000 switches took {elapsed:.1f} s"


@node
def step(x: int) -> int:
    return x + 1


@node
def more(step: int) -> bool:
    return step < 3


@node
def done(step: int) -> int:
    return step


def test_validator_lists_structure_problems_without_a_context() -> None:
    """A flow's own problems are found without raising and without knowing its context's providers."""

    @node
    def ping(pong: int) -> int:
        return pong

    @node
    def pong(ping: int) -> int:
        return ping

    spec = Flow([ping, pong]).map(step).spec
    problems = GraphValidator(Topology(spec), spec).structure()
    assert problems == [
        "map(step) needs exactly one node before it, found 0 (none); fan_in(...) them first.",
        "its nodes form a cycle that does not go through a branch: ping -> pong. A node may only read "
        "outputs of nodes upstream of it; to loop, use branch_on({...: upstream_node}) on a switch node.",
        "node 'step' is mapped but has 0 upstream nodes; it needs exactly one.",
    ]


def test_vertex_view_tells_loops_from_forward_branches() -> None:
    """Readers off the per-node path see each vertex by name: its predecessors, branches and loops."""
    graph = step.then(more).branch_on({True: step, False: done}).graph
    switch = graph.vertex("more")
    assert switch is not None and switch.switch
    assert switch.branches == {True: "step", False: "done"}
    assert switch.loops_to == ("step",)
    assert graph.vertex("done") == graph.vertices[2]
    assert graph.vertices[2].preds == ("step", "more")  # done(step) reads step by name, and more chooses it
    assert graph.vertex("nope") is None
    assert [v.name for v in graph.in_order()] == ["step", "more", "done"]
