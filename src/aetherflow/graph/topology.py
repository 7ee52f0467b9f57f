"""The shape derived from a spec: numbered vertices, their forward edges, loops and order.

Vertices are numbered in the order they were added, and each fact is a list indexed by
that number: the scheduler and the worker read them once per node, where a list index
is the cheapest lookup Python has. Readers off that path (report, recovery, viz, ui)
ask for a `Vertex` by name instead.

Nothing here is checked: a topology is derived even from a broken spec, so that
`validate.GraphValidator` can describe what is wrong with it (a cycle's vertices, say).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..node import Node
from .spec import GraphSpec, data_sources


@dataclass(frozen=True, slots=True)
class Vertex:
    """One vertex of a flow, by name: the view for readers that are not on the per-node path."""

    index: int
    name: str
    node: Node
    mapped: bool  # runs once per item of its single explicit predecessor's output
    join: bool  # a fan_in after parallel branches: its piped parameter gets {branch: output}
    upstream: tuple[str, ...]  # explicit predecessors (then, fan, connect), in the order given
    preds: tuple[str, ...]  # every forward predecessor: explicit, by parameter name, by a branch
    branches: dict[Any, str] | None  # switch value -> target, for a switch
    default: str | None  # a switch's target when its value matches no key
    loops_to: tuple[str, ...]  # branch targets upstream of this switch: the loop edges

    @property
    def switch(self) -> bool:
        return self.branches is not None


class Topology:
    """Per-vertex lists, indexed by vertex number, derived from a `GraphSpec` in one pass."""

    def __init__(self, spec: GraphSpec) -> None:
        self.names = list(spec.vertices)
        self.index = {n: i for i, n in enumerate(self.names)}
        vertices = [spec.vertices[v] for v in self.names]
        self.nodes = [v.node for v in vertices]
        # Explicit edges (then / fan / connect), each source once, in the order given.
        self.explicit: list[list[int]] = [[self.index[p] for p in dict.fromkeys(v.preds)] for v in vertices]
        # Edges implied by a parameter named after another vertex.
        self.data: list[list[int]] = [[self.index[s] for s in data_sources(v, spec.vertices)] for v in vertices]
        self.mapped = [v.mapped for v in vertices]
        self.join = [v.join for v in vertices]
        # Vertices the worker calls as they come: not split over items first, not async.
        self.plain = [not m and not node.is_async for m, node in zip(self.mapped, self.nodes, strict=True)]
        self.branches: list[dict[Any, int] | None] = [
            None if v.branches is None else {k: self.index[t] for k, t in v.branches.items()} for v in vertices
        ]
        self.branch_default: list[int | None] = [self.index[v.default] if v.default else None for v in vertices]
        self.preds, self.succs, self.back_targets, self.branch_forward = _forward_edges(
            self.explicit, self.data, self.branches, self.branch_default
        )
        self.order, self.stuck = _topological_order(self.preds, self.succs)
        self.sinks = [i for i, succs in enumerate(self.succs) if not succs and self.branches[i] is None]

    # -- the view by name ---------------------------------------------------------------------

    @cached_property
    def vertices(self) -> tuple[Vertex, ...]:
        """Every vertex, in the order added (built on first use: the per-node path never asks)."""
        names = self.names

        def named(indices: Iterable[int]) -> tuple[str, ...]:
            return tuple(names[j] for j in indices)

        return tuple(
            Vertex(
                index=i,
                name=name,
                node=self.nodes[i],
                mapped=self.mapped[i],
                join=self.join[i],
                upstream=named(self.explicit[i]),
                preds=named(self.preds[i]),
                branches=None if (b := self.branches[i]) is None else {k: names[t] for k, t in b.items()},
                default=None if (d := self.branch_default[i]) is None else names[d],
                loops_to=named(sorted(self.back_targets[i])),
            )
            for i, name in enumerate(names)
        )

    def vertex(self, name: str) -> Vertex | None:
        """The vertex named ``name``, or None if the flow has none of that name."""
        i = self.index.get(name)
        return None if i is None else self.vertices[i]

    def in_order(self) -> list[Vertex]:
        """The vertices with every forward predecessor before its successors (those on a cycle left out)."""
        return [self.vertices[i] for i in self.order]


def _forward_edges(
    explicit: list[list[int]],
    data: list[list[int]],
    branches: list[dict[Any, int] | None],
    branch_default: list[int | None],
) -> tuple[list[list[int]], list[list[int]], list[set[int]], list[set[int]]]:
    """``(preds, succs, back_targets, branch_forward)``: a branch target is a loop when it is upstream.

    A switch's target upstream of it (over the explicit and data edges, and the forward
    branch edges of the switches numbered before it) is a loop edge; any other target
    becomes a forward edge, so its readiness counts the switch's signal.
    """
    n = len(explicit)
    preds: list[dict[int, None]] = [dict.fromkeys(explicit[i] + data[i]) for i in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(preds):
        for p in ps:
            succs[p].append(i)
    back_targets: list[set[int]] = [set() for _ in range(n)]
    branch_forward: list[set[int]] = [set() for _ in range(n)]
    for i, choices in enumerate(branches):
        if choices is None:
            continue
        targets = set(choices.values())
        default = branch_default[i]
        if default is not None:
            targets.add(default)
        for t in targets:
            if t == i or _leads_to(t, i, succs, preds):
                back_targets[i].add(t)
            else:
                branch_forward[i].add(t)
                if i not in preds[t]:
                    preds[t][i] = None
                    succs[i].append(t)
    # Successors in vertex order, as they were before branch edges were told apart here.
    return [list(p) for p in preds], [sorted(s) for s in succs], back_targets, branch_forward


def _leads_to(a: int, b: int, succs: list[list[int]], preds: list[dict[int, None]]) -> bool:
    """Whether a forward path leads from ``a`` to ``b``.

    Searched from both ends at once, widening the smaller frontier each step: a branch
    target that is a new vertex (no successors yet) is answered at once, and a loop costs
    its own length, however long the flow around it. (A search of all ancestors per
    switch made a chain of n switches cost n² steps.)
    """
    ahead, behind = {a}, {b}
    front, back = [a], [b]
    while front and back:
        if len(front) <= len(back):
            front, met = _widen(front, succs, ahead, behind)
        else:
            back, met = _widen(back, preds, behind, ahead)
        if met:
            return True
    return False


def _widen(
    frontier: list[int], edges: list[list[int]] | list[dict[int, None]], seen: set[int], other: set[int]
) -> tuple[list[int], bool]:
    """One step of a search along ``edges``: its next frontier, and whether it met the other search."""
    nxt: list[int] = []
    for v in frontier:
        for w in edges[v]:
            if w in other:
                return nxt, True
            if w not in seen:
                seen.add(w)
                nxt.append(w)
    return nxt, False


def _topological_order(preds: list[list[int]], succs: list[list[int]]) -> tuple[list[int], list[int]]:
    """``(order, stuck)``: Kahn's order of the vertices, and those it never reaches (on a cycle)."""
    indegree = [len(p) for p in preds]
    queue = deque(i for i, d in enumerate(indegree) if d == 0)
    order = []
    while queue:
        i = queue.popleft()
        order.append(i)
        for s in succs[i]:
            indegree[s] -= 1
            if indegree[s] == 0:
                queue.append(s)
    return order, [i for i, d in enumerate(indegree) if d > 0]


def reach(starts: Iterable[int], edges: list[list[int]]) -> set[int]:
    """Every vertex reachable from ``starts`` (included) along ``edges``."""
    seen = set(starts)
    stack = list(seen)
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
