"""`Graph`: a flow's topology, validated, with its plans (one per context shape)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import FlowDefinitionError
from .plan import Plan, compile_plan
from .spec import GraphSpec
from .topology import Topology
from .validate import GraphValidator

T = TypeVar("T")


class Graph(Topology):
    """A validated topology: derived from the spec, checked, and refused with every problem at once.

    `bind` gives the `Plan` for a context's provider names, checked against them, once per
    set of names.
    """

    def __init__(self, flow: str, spec: GraphSpec) -> None:
        super().__init__(spec)
        self.flow = flow
        self.spec = spec
        self.validator = GraphValidator(self, spec)
        problems = self.validator.structure()
        if problems:
            raise FlowDefinitionError(flow, problems)
        self._plans: dict[frozenset[str], Plan] = {}
        self._derived: dict[Callable[[Graph], Any], Any] = {}

    def bind(self, provider_names: frozenset[str]) -> Plan:
        """The plan for a context with these provider names; `FlowDefinitionError` lists what they break."""
        plan = self._plans.get(provider_names)
        if plan is None:
            plan = compile_plan(self, self.flow, provider_names)
            problems = self.validator.context(provider_names) + self.validator.bindings(plan)
            if problems:
                raise FlowDefinitionError(self.flow, problems)
            self._plans[provider_names] = plan
        return plan

    def derived(self, build: Callable[[Graph], T]) -> T:
        """``build(self)``, computed once and kept with the graph.

        How a higher layer keeps what it derives from a graph (the scheduler's `Schedule`)
        without this layer knowing it, and without a cache keyed by the graph's `id()`.
        """
        try:
            value: T = self._derived[build]
        except KeyError:
            # Two threads may both build it: the results are equal, and the last one is kept.
            value = self._derived[build] = build(self)
        return value
