"""The validated graph: edges from names, loops, cycles, all problems at once; and its plans."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from ..errors import FlowDefinitionError
from ..node import Node
from ..typos import NearNames
from .plan import (
    _BUILTIN_KIND,
    _VALUE_KINDS,
    B_INPUT,
    B_ITEM,
    B_JOB_STATE,
    B_JOIN,
    B_NODE,
    B_NODE_STATE,
    B_PROVIDER,
    B_WORKER_STATE,
    BUILTINS,
    Binding,
    InputSpec,
    Plan,
    VertexPlan,
)
from .spec import GraphSpec, _data_sources


class Graph:
    """A validated graph: forward edges, loop (back) edges, and the structure the scheduler walks."""

    def __init__(self, flow: str, spec: GraphSpec) -> None:
        self.flow = flow
        self.spec = spec
        problems = list(spec.problems)
        self.names = list(spec.vertices)
        self.index = {n: i for i, n in enumerate(self.names)}
        n = len(self.names)
        self.nodes = [spec.vertices[v].node for v in self.names]
        self.explicit: list[list[int]] = [
            [self.index[p] for p in dict.fromkeys(spec.vertices[v].preds)] for v in self.names
        ]
        data = [[self.index[s] for s in _data_sources(spec.vertices[v], spec.vertices)] for v in self.names]
        self.mapped = [spec.vertices[v].mapped for v in self.names]
        self.join = [spec.vertices[v].join for v in self.names]
        # Vertices the worker calls as they come: not split over items first, not async.
        self.plain = [not m and not node.is_async for m, node in zip(self.mapped, self.nodes, strict=True)]
        # preds (forward) per vertex: explicit, data and forward branch edges
        preds: list[dict[int, None]] = [dict.fromkeys(self.explicit[i] + data[i]) for i in range(n)]
        self.branches: list[dict[Any, int] | None] = [None] * n
        self.branch_default: list[int | None] = [None] * n
        self.back_targets: list[set[int]] = [set() for _ in range(n)]
        self.branch_forward: list[set[int]] = [set() for _ in range(n)]
        ancestors = _Ancestry(preds)
        for i, name in enumerate(self.names):
            v = spec.vertices[name]
            if v.branches is None:
                continue
            choices = {k: self.index[t] for k, t in v.branches.items()}
            self.branches[i] = choices
            self.branch_default[i] = self.index[v.default] if v.default else None
            targets = set(choices.values())
            if self.branch_default[i] is not None:
                targets.add(self.branch_default[i])  # type: ignore[arg-type]
            for t in targets:
                if t == i or ancestors.is_ancestor(t, i):
                    self.back_targets[i].add(t)
                else:
                    self.branch_forward[i].add(t)
                    preds[t][i] = None
        self.preds = [list(p) for p in preds]
        self.pred_counts = [len(p) for p in self.preds]
        self.sources = [i for i, count in enumerate(self.pred_counts) if count == 0]
        # What every job's scheduler state starts from (copied: cheaper than built).
        self.waiting_at_start = dict(enumerate(self.pred_counts))
        self.no_runs = dict.fromkeys(range(n), 0)
        self.succs: list[list[int]] = [[] for _ in range(n)]
        for i, ps in enumerate(self.preds):
            for p in ps:
                self.succs[p].append(i)
        self.order = self._topological_order(problems)
        self.loop_preds = self._loop_preds() if any(self.back_targets) else [[] for _ in range(n)]
        self.rearm = [len(lp) for lp in self.loop_preds]  # signals a vertex waits for after it ran
        self.sinks = [i for i in range(n) if not self.succs[i] and not self.branches[i]]
        self.sole_sink = self.names[self.sinks[0]] if len(self.sinks) == 1 else None  # its output is the job's
        self.link = self._links()
        self._check_copies_are_named(data, problems)
        for i in range(n):
            if self.mapped[i] and len(self.explicit[i]) != 1:
                problems.append(
                    f"node '{self.names[i]}' is mapped but has {len(self.explicit[i])} upstream nodes; it needs exactly one."
                )
        if not self.names:
            problems.append("it has no nodes; add some with Flow([...]) or flow.add(node).")
        if problems:
            raise FlowDefinitionError(flow, problems)
        self._plans: dict[frozenset[str], Plan] = {}

    def _check_copies_are_named(self, data: list[list[int]], problems: list[str]) -> None:
        """Refuse a parameter naming the first of several copies of a node upstream of it.

        After ``inc.repeat(3).then(report)``, ``report(inc)`` would read the first of
        ``inc``, ``inc_2``, ``inc_3``, which is rarely what was meant: make it say which.
        """
        copies: dict[int, list[int]] = {}
        for i, node in enumerate(self.nodes):
            copies.setdefault(id(node), []).append(i)  # ids of nodes this graph holds: stable
        reported = 0
        for i, sources in enumerate(data):
            upstream: set[int] | None = None
            for j in sources:
                same = copies[id(self.nodes[j])]
                if len(same) < 2 or self.names[j] != self.nodes[j].name:
                    continue  # a single vertex, or a copy named explicitly ('inc_2')
                if upstream is None:
                    upstream = _reach(i, self.preds)
                others = [self.names[k] for k in same if k not in (i, j) and k in upstream]
                if not others:
                    continue
                problems.append(
                    f"parameter '{self.names[j]}' of node '{self.names[i]}' ({self.nodes[i].location}) is "
                    f"ambiguous: '{self.names[j]}' runs {len(others) + 1} times upstream of it, as "
                    + ", ".join(f"'{c}'" for c in [self.names[j], *others])
                    + f", and '{self.names[j]}' is only the first. Name the copy you mean "
                    f"(e.g. '{others[-1]}'), or give the copies their own nodes with @node(name=...)."
                )
                reported += 1
                if reported >= 10:  # the flow is refused anyway: spare a huge one the search
                    return

    def _typo_problem(self, i: int, param: str, piped: bool, providers: frozenset[str], near: NearNames) -> str | None:
        """A problem if a parameter about to be piped or taken as an input looks like a misspelt name."""
        own = self.names[i]
        names = [n for n in near.of(param) if n != own][:3]  # a node cannot read itself: no typo of it
        if not names:
            return None
        if piped:
            upstream = self.explicit[i]
            source = (
                f"filled from node '{self.names[upstream[0]]}' by the pipe rule"
                if len(upstream) == 1 and not self.join[i] and not self.mapped[i]
                else "filled by the pipe rule from " + ", ".join(f"'{self.names[u]}'" for u in upstream)
            )
        else:
            source = f"taken as the job input '{param}'"
        return _typo_problem_text(param, own, self.nodes[i].location, source, names, providers)

    def _links(self) -> list[int]:
        """Per vertex, its chain successor, or -1.

        A link ``i -> s``: ``s`` is ``i``'s only successor, ``i`` is ``s``'s only predecessor,
        ``i`` chooses no branch and no loop exists. When ``i`` completes, ``s`` is ready
        at once, without counting signals: the scheduler's fast path for chains.
        """
        link = [-1] * len(self.names)
        if any(self.back_targets):
            return link
        for i, succs in enumerate(self.succs):
            if len(succs) == 1 and self.branches[i] is None:
                s = succs[0]
                if self.pred_counts[s] == 1:
                    link[i] = s
        return link

    def _topological_order(self, problems: list[str]) -> list[int]:
        indegree = [len(p) for p in self.preds]
        queue = deque(i for i, d in enumerate(indegree) if d == 0)
        order = []
        while queue:
            i = queue.popleft()
            order.append(i)
            for s in self.succs[i]:
                indegree[s] -= 1
                if indegree[s] == 0:
                    queue.append(s)
        if len(order) < len(self.names):
            stuck = [self.names[i] for i, d in enumerate(indegree) if d > 0]
            problems.append(
                "its nodes form a cycle that does not go through a branch: "
                + " -> ".join(stuck[:10])
                + (" ..." if len(stuck) > 10 else "")
                + ". A node may only read outputs of nodes upstream of it; to loop, use "
                "branch_on({...: upstream_node}) on a switch node."
            )
        return order

    def _loop_preds(self) -> list[list[int]]:
        """Per vertex, the predecessors that run again in a loop (they re-trigger it)."""
        in_loop: set[int] = set()
        for sw, targets in enumerate(self.back_targets):
            for t in targets:
                downstream = _reach(t, self.succs)
                upstream = _reach(sw, self.preds)
                in_loop |= downstream & upstream
        # Anything downstream of a loop vertex re-runs when that vertex runs again.
        affected = set()
        for v in in_loop:
            affected |= _reach(v, self.succs)
        return [
            [p for p in self.preds[i] if p in in_loop or p in affected] if i in affected else []
            for i in range(len(self.names))
        ]

    # -- binding parameters, for one context shape -----------------------------------------

    def bind(self, provider_names: frozenset[str]) -> Plan:
        plan = self._plans.get(provider_names)
        if plan is None:
            plan = self._plans[provider_names] = self._bind(provider_names)
        return plan

    def _bind(self, providers: frozenset[str]) -> Plan:
        problems: list[str] = []
        vertex_names = set(self.names)
        for name in sorted(providers & set(BUILTINS)):
            problems.append(
                f"the context defines a provider named '{name}', but '{name}' is a built-in "
                "injectable (reserved names: " + ", ".join(BUILTINS) + "); rename the provider."
            )
        for name in sorted(vertex_names & set(BUILTINS)):
            problems.append(
                f"node '{name}' is named like the built-in injectable '{name}'; rename the function or use @node(name=...)."
            )
        for name in sorted(vertex_names & providers):
            users = [
                f"'{v}' ({self.nodes[i].location})"
                for i, v in enumerate(self.names)
                if name in self.nodes[i].param_names and v != name
            ]
            where = f" (parameter '{name}' of node {', '.join(users)})" if users else ""
            problems.append(
                f"'{name}' is both a node of the flow and a provider of the context, so a "
                f"parameter named '{name}' would be ambiguous{where}; rename the node or the provider."
            )
        inputs: dict[str, dict[str, Any]] = {}
        near = NearNames([*self.names, *providers])
        plans = [self._bind_vertex(i, providers, inputs, problems, near) for i in range(len(self.names))]
        if problems:
            raise FlowDefinitionError(self.flow, problems)
        specs = {k: InputSpec(v["required"], tuple(v["nodes"]), v["secret"]) for k, v in inputs.items()}
        return Plan(self.flow, plans, specs, providers)

    def _bind_vertex(
        self, i: int, providers: frozenset[str], inputs: dict[str, dict[str, Any]], problems: list[str], near: NearNames
    ) -> VertexPlan:
        node, name = self.nodes[i], self.names[i]
        upstream = self.explicit[i]
        bindings: list[Binding] = []
        free: list[Any] = []
        for p in node.params:
            has_default = not p.required
            if p.name in _BUILTIN_KIND:
                bindings.append(Binding(p.name, _BUILTIN_KIND[p.name], None, has_default))
            elif p.name in providers:
                bindings.append(Binding(p.name, B_PROVIDER, p.name, has_default))
            elif p.name in self.index and p.name != name:
                kind = B_ITEM if self.mapped[i] and self.index[p.name] in upstream else B_NODE
                bindings.append(Binding(p.name, kind, p.name, has_default))
            else:
                free.append(p)
        required_free = [p for p in free if p.required]
        pipe = None
        already_item = any(b.kind == B_ITEM for b in bindings)
        if len(required_free) == 1 and upstream and not already_item:
            pipe = required_free[0]
            if self.mapped[i]:
                bindings.append(Binding(pipe.name, B_ITEM, self.names[upstream[0]], False))
            elif len(upstream) == 1 and not self.join[i]:
                bindings.append(Binding(pipe.name, B_NODE, self.names[upstream[0]], False))
            else:
                srcs = tuple(self.names[u] for u in upstream)
                bindings.append(Binding(pipe.name, B_JOIN, srcs, False))
        if self.mapped[i] and not already_item and pipe is None:
            problems.append(
                f"node '{name}' ({node.location}) is mapped over '{self.names[upstream[0]]}' but has no "
                f"parameter to receive one item: give it exactly one required parameter that no "
                f"node, provider or built-in fills, or name a parameter '{self.names[upstream[0]]}'."
            )
        for p in free:
            typo = self._typo_problem(i, p.name, pipe is p, providers, near)
            if typo:
                problems.append(typo)
            if p is pipe:
                continue
            bindings.append(Binding(p.name, B_INPUT, p.name, not p.required))
            entry = inputs.setdefault(p.name, {"required": False, "nodes": [], "secret": False})
            entry["required"] = entry["required"] or p.required
            entry["nodes"].append(name)
            entry["secret"] = entry["secret"] or node.is_secret(p.name)
        # In parameter order: the node is called with its arguments by position.
        position = {p.name: k for k, p in enumerate(node.params)}
        bindings = sorted((_completed(b, node) for b in bindings), key=lambda b: position[b.param])
        needs = tuple((b.key, b.has_default) for b in bindings if b.kind == B_NODE)
        uses_state = any(b.kind in (B_JOB_STATE, B_NODE_STATE, B_WORKER_STATE) for b in bindings)
        check_output, output_exact = node.checker("return") or (None, None)
        return VertexPlan(name, node, i, tuple(bindings), needs, uses_state, check_output, output_exact)


def _typo_problem_text(
    param: str, vertex: str, location: str, source: str, names: list[str], providers: frozenset[str]
) -> str:
    kinds = [f"the {'provider' if n in providers else 'node'} '{n}'" for n in names]
    return (
        f"parameter '{param}' of node '{vertex}' ({location}) names no node, provider or built-in, "
        f"so it would be {source}; but it is within a typo of {' or '.join(kinds)}: "
        f"did you mean {kinds[0]}? Rename the parameter to '{names[0]}' to be injected "
        f"with it, or to a name further from every node and provider name."
    )


def _completed(b: Binding, node: Node) -> Binding:
    """``b`` with its parameter's default, and its validator if it carries a value."""
    check, exact = (node.checker(b.param) or (None, None)) if b.kind in _VALUE_KINDS else (None, None)
    return replace(b, check=check, exact=exact, default=node.param(b.param).default)


class _Ancestry:
    """Answers "is a an ancestor of b" over the explicit and data edges (memoised per b)."""

    def __init__(self, preds: list[dict[int, None]]) -> None:
        self._preds = preds
        self._cache: dict[int, set[int]] = {}

    def is_ancestor(self, a: int, b: int) -> bool:
        if b not in self._cache:
            self._cache[b] = _reach(b, [list(p) for p in self._preds])
        return a in self._cache[b]


def _reach(start: int, edges: list[list[int]]) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in edges[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
