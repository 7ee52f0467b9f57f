"""What the user built: vertices, explicit edges and branches, before validation."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..errors import closest
from ..node import Node


@dataclass
class VertexSpec:
    name: str
    node: Node
    preds: list[str] = field(default_factory=list)  # explicit edges: then / fan / connect
    mapped: bool = False  # runs once per item of its single explicit predecessor's output
    branches: dict[Any, str] | None = None  # switch value -> target vertex
    default: str | None = None  # target when the value matches no key
    join: bool = False  # a fan_in after parallel tails: its piped parameter gets {tail: output}


class GraphSpec:
    """What the user built, before validation: vertices, explicit edges, branches."""

    def __init__(self) -> None:
        self.vertices: dict[str, VertexSpec] = {}
        self.problems: list[str] = []
        self._tails: list[str] | None = []
        self._counts: dict[str, int] = {}
        # The tails are parallel branches (fan_out_to, branch_on): a fan_in after them is a
        # join even when there is only one branch, so its shape does not depend on the count.
        self._parallel = False

    def first_name(self) -> str:
        return next(iter(self.vertices), "flow")

    # -- steps ------------------------------------------------------------------------

    def add(self, node: Node) -> str:
        name = self._new_vertex(node)
        self._tails = None  # Flow([...]): the tails are whatever ends up a sink
        return name

    def chain(self, node: Node) -> None:
        tails = self.tails
        name = self._new_vertex(node)
        self.vertices[name].preds.extend(tails)
        self._tails = [name]
        self._parallel = False

    def fan_out(self, nodes: list[Node]) -> None:
        tails = self.tails
        names = [self._new_vertex(n) for n in nodes]
        for name in names:
            self.vertices[name].preds.extend(tails)
        self._tails = names
        self._parallel = True

    def fan_in(self, node: Node) -> None:
        parallel = self._parallel
        self.chain(node)
        self.vertices[self._tails[0]].join = parallel  # type: ignore[index]

    def map(self, node: Node) -> None:
        tails = self.tails
        if len(tails) != 1:
            self.problems.append(
                f"map({node.name}) needs exactly one node before it, found {len(tails)} "
                f"({', '.join(tails) or 'none'}); fan_in(...) them first."
            )
        self.chain(node)
        self.vertices[self._tails[0]].mapped = True  # type: ignore[index]

    def repeat(self, times: int) -> None:
        tails = self.tails
        if len(tails) != 1:
            self.problems.append(f"repeat({times}) needs exactly one node before it, found {tails}.")
            return
        node = self.vertices[tails[0]].node
        for _ in range(times - 1):
            self.chain(node)

    def branch_on(self, targets: dict[Any, Node], default: Node | None) -> None:
        tails = self.tails
        if len(tails) != 1:
            self.problems.append(f"branch_on(...) needs exactly one node before it to switch on, found {tails}.")
            return
        switch = tails[0]
        forward: list[str] = []
        resolved = {k: self._branch_target(switch, n, forward) for k, n in targets.items()}
        d = self._branch_target(switch, default, forward) if default is not None else None
        self._set_branches(switch, resolved, d)
        self._tails = forward
        self._parallel = True

    def connect(self, src: Node | str, dst: Node | str) -> None:
        a, b = self._find(src), self._find(dst)
        if a and b:
            self.vertices[b].preds.append(a)

    def branch(self, switch: Node | str, targets: dict[Any, Node | str], default: Node | str | None) -> None:
        sw = self._find(switch)
        resolved = {k: self._find(t) for k, t in targets.items()}
        d = self._find(default) if default is not None else None
        if sw and all(resolved.values()) and (default is None or d):
            self._set_branches(sw, resolved, d)  # type: ignore[arg-type]

    def append_flow(self, other: GraphSpec) -> None:
        tails = self.tails
        renamed: dict[str, str] = {}
        for v in other.vertices.values():
            renamed[v.name] = self._new_vertex(v.node)
        for v in other.vertices.values():
            mine = self.vertices[renamed[v.name]]
            mine.preds.extend(renamed[p] for p in v.preds)
            mine.mapped = v.mapped
            mine.join = v.join
            if v.branches is not None:
                mine.branches = {k: renamed[t] for k, t in v.branches.items()}
                mine.default = renamed[v.default] if v.default else None
            if not v.preds and not data_sources(v, other.vertices):
                mine.preds.extend(tails)
        self._tails = [renamed[t] for t in other.tails]
        self._parallel = other._parallel
        self.problems.extend(other.problems)

    # -- helpers ------------------------------------------------------------------------

    @property
    def tails(self) -> list[str]:
        if self._tails is None:
            has_succ = {p for v in self.vertices.values() for p in v.preds}
            has_succ |= {s for v in self.vertices.values() for s in data_sources(v, self.vertices)}
            self._tails = [n for n in self.vertices if n not in has_succ]
        return self._tails

    def _new_vertex(self, node: Node) -> str:
        n = self._counts.get(node.name, 0) + 1
        name = node.name if n == 1 else f"{node.name}_{n}"
        while name in self.vertices:
            n += 1
            name = f"{node.name}_{n}"
        self._counts[node.name] = n
        self.vertices[name] = VertexSpec(name, node)
        return name

    def _find(self, ref: Node | str) -> str | None:
        if isinstance(ref, str):
            if ref in self.vertices:
                return ref
            hint = closest(ref, self.vertices)
            self.problems.append(
                f"no node named '{ref}' in the flow"
                + (f"; did you mean '{hint[0]}'?" if hint else f" (nodes: {', '.join(self.vertices)}).")
            )
            return None
        for v in self.vertices.values():
            if v.node is ref:
                return v.name
        return self._new_vertex(ref)

    def _branch_target(self, switch: str, node: Node, forward: list[str]) -> str:
        upstream = self._nearest_upstream(switch, node)
        if upstream is not None:
            return upstream
        name = self._new_vertex(node)
        forward.append(name)
        return name

    def _nearest_upstream(self, start: str, node: Node) -> str | None:
        seen = {start}
        queue = deque([start])
        while queue:
            v = self.vertices[queue.popleft()]
            if v.node is node:
                return v.name
            for p in (*v.preds, *data_sources(v, self.vertices)):
                if p not in seen:
                    seen.add(p)
                    queue.append(p)
        return None

    def _set_branches(self, switch: str, targets: dict[Any, str], default: str | None) -> None:
        if not targets:
            self.problems.append(f"branch on '{switch}' has no targets; give at least one.")
        self.vertices[switch].branches = targets
        self.vertices[switch].default = default


def data_sources(v: VertexSpec, vertices: dict[str, VertexSpec]) -> list[str]:
    """The vertices ``v`` reads by naming them in a parameter (itself excepted)."""
    return [p.name for p in v.node.params if p.name in vertices and p.name != v.name]
