"""Every problem of a flow, found at once, then raised once by the caller.

`GraphValidator` reads a derived `Topology` (and, per context shape, the `Plan` bound
for it) and returns sentences; it never raises and never changes what it reads. Three
entry points, from the cheapest:

- `structure()`: what the flow alone gets wrong (a cycle, an ambiguous copy, a map
  without exactly one source, no nodes). `Graph(...)` runs it: a flow whose context
  cannot be built yet (no providers known) can still be drawn, listed and checked.
- `context(providers)`: names the context's providers clash with.
- `bindings(plan)`: what binding parameters revealed (a mapped node with no parameter
  for an item, a parameter a typo away from a node or provider).

`Graph.bind` runs the last two with the context's provider names.
"""

from __future__ import annotations

from ..typos import NearNames
from .plan import B_INPUT, B_ITEM, BUILTINS, Plan, VertexPlan
from .spec import GraphSpec
from .topology import Topology, reach

_MAX_AMBIGUOUS = 10  # the flow is refused anyway: spare a huge one the search


class GraphValidator:
    """Finds what is wrong with one graph; each method returns its problems, in a stable order."""

    def __init__(self, topology: Topology, spec: GraphSpec) -> None:
        self.topology = topology
        self.spec = spec

    def structure(self) -> list[str]:
        """What the flow gets wrong whatever its context: the steps, cycles, copies, maps."""
        t = self.topology
        problems = list(self.spec.problems)
        if t.stuck:
            stuck = [t.names[i] for i in t.stuck]
            problems.append(
                "its nodes form a cycle that does not go through a branch: "
                + " -> ".join(stuck[:10])
                + (" ..." if len(stuck) > 10 else "")
                + ". A node may only read outputs of nodes upstream of it; to loop, use "
                "branch_on({...: upstream_node}) on a switch node."
            )
        problems += self._ambiguous_copies()
        for i, name in enumerate(t.names):
            if t.mapped[i] and len(t.explicit[i]) != 1:
                problems.append(
                    f"node '{name}' is mapped but has {len(t.explicit[i])} upstream nodes; it needs exactly one."
                )
        if not t.names:
            problems.append("it has no nodes; add some with Flow([...]) or flow.add(node).")
        return problems

    def context(self, providers: frozenset[str]) -> list[str]:
        """Names the context's providers share with a built-in injectable or a node."""
        t = self.topology
        problems: list[str] = []
        vertex_names = set(t.names)
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
                f"'{v}' ({t.nodes[i].location})"
                for i, v in enumerate(t.names)
                if name in t.nodes[i].param_names and v != name
            ]
            where = f" (parameter '{name}' of node {', '.join(users)})" if users else ""
            problems.append(
                f"'{name}' is both a node of the flow and a provider of the context, so a "
                f"parameter named '{name}' would be ambiguous{where}; rename the node or the provider."
            )
        return problems

    def bindings(self, plan: Plan) -> list[str]:
        """What binding each vertex's parameters revealed: a map with no item parameter, typos."""
        near = NearNames([*self.topology.names, *plan.provider_names])
        problems: list[str] = []
        for vp in plan.vertices:
            problems += self._vertex_bindings(vp, plan.provider_names, near)
        return problems

    # -- one check each ----------------------------------------------------------------------

    def _vertex_bindings(self, vp: VertexPlan, providers: frozenset[str], near: NearNames) -> list[str]:
        t = self.topology
        i = vp.index
        problems = []
        if t.mapped[i] and not any(b.kind == B_ITEM for b in vp.bindings):
            source = t.names[t.explicit[i][0]]
            problems.append(
                f"node '{vp.name}' ({vp.node.location}) is mapped over '{source}' but has no "
                f"parameter to receive one item: give it exactly one required parameter that no "
                f"node, provider or built-in fills, or name a parameter '{source}'."
            )
        # The parameters no node, provider or built-in fills: piped, or taken as job inputs.
        for b in vp.bindings:
            if b.kind == B_INPUT or b.param == vp.pipe:
                typo = self._typo(i, b.param, b.param == vp.pipe, providers, near)
                if typo:
                    problems.append(typo)
        return problems

    def _typo(self, i: int, param: str, piped: bool, providers: frozenset[str], near: NearNames) -> str | None:
        """A problem if a parameter about to be piped or taken as an input looks like a misspelt name."""
        t = self.topology
        own = t.names[i]
        names = [n for n in near.of(param) if n != own][:3]  # a node cannot read itself: no typo of it
        if not names:
            return None
        if piped:
            upstream = t.explicit[i]
            source = (
                f"filled from node '{t.names[upstream[0]]}' by the pipe rule"
                if len(upstream) == 1 and not t.join[i] and not t.mapped[i]
                else "filled by the pipe rule from " + ", ".join(f"'{t.names[u]}'" for u in upstream)
            )
        else:
            source = f"taken as the job input '{param}'"
        kinds = [f"the {'provider' if n in providers else 'node'} '{n}'" for n in names]
        return (
            f"parameter '{param}' of node '{own}' ({t.nodes[i].location}) names no node, provider or built-in, "
            f"so it would be {source}; but it is within a typo of {' or '.join(kinds)}: "
            f"did you mean {kinds[0]}? Rename the parameter to '{names[0]}' to be injected "
            f"with it, or to a name further from every node and provider name."
        )

    def _ambiguous_copies(self) -> list[str]:
        """Refuse a parameter naming the first of several copies of a node upstream of it.

        After ``inc.repeat(3).then(report)``, ``report(inc)`` would read the first of
        ``inc``, ``inc_2``, ``inc_3``, which is rarely what was meant: make it say which.
        """
        t = self.topology
        copies: dict[int, list[int]] = {}
        for i, node in enumerate(t.nodes):
            copies.setdefault(id(node), []).append(i)  # ids of nodes this graph holds: stable
        problems: list[str] = []
        for i, sources in enumerate(t.data):
            upstream: set[int] | None = None
            for j in sources:
                same = copies[id(t.nodes[j])]
                if len(same) < 2 or t.names[j] != t.nodes[j].name:
                    continue  # a single vertex, or a copy named explicitly ('inc_2')
                if upstream is None:
                    upstream = reach([i], t.preds)
                others = [t.names[k] for k in same if k not in (i, j) and k in upstream]
                if not others:
                    continue
                problems.append(
                    f"parameter '{t.names[j]}' of node '{t.names[i]}' ({t.nodes[i].location}) is "
                    f"ambiguous: '{t.names[j]}' runs {len(others) + 1} times upstream of it, as "
                    + ", ".join(f"'{c}'" for c in [t.names[j], *others])
                    + f", and '{t.names[j]}' is only the first. Name the copy you mean "
                    f"(e.g. '{others[-1]}'), or give the copies their own nodes with @node(name=...)."
                )
                if len(problems) >= _MAX_AMBIGUOUS:
                    return problems
        return problems
