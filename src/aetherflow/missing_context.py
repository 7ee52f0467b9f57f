"""The error that blames a missing context: which providers a flow asks for, and which context gives them.

Without the providers a node asks for, its parameters look like job inputs, so the plain
error blames an input (or a map over one). `explain` names the providers, who asks for
them, the context the job used, and a context the user's modules define that provides
them. `Worker` tells a Python caller to pass ``context=``; the command line tells its
user to pass ``--context`` (targets.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from dependency_injector import containers

from .context import BaseFlowContext, provider_names
from .errors import FlowDefinitionError
from .flow import Flow


def explain(
    flow: Flow,
    context: Any,
    values: Mapping[str, Any],
    modules: Iterable[ModuleType],
    how_to_pass: Callable[[str, str], str],
    where_of: Callable[[ModuleType], str] = lambda module: module.__name__,
    action: str = "ran",
) -> str | None:
    """Why ``flow`` cannot run in ``context``, or None when no context in ``modules`` would fix it.

    The message ends with ``how_to_pass(where, name)``: how the user gives the context
    ``name`` found in the module the user calls ``where`` (``where_of(module)``).
    """
    try:
        graph = flow.graph
    except FlowDefinitionError:  # a problem of the flow's shape, whatever the context
        return None
    current = provider_names(context)
    candidates = [
        (module, name, value)
        for module in modules
        for name in contexts_in(module)
        if (value := getattr(module, name)) is not None
    ]
    offered = {p for _, _, value in candidates for p in provider_names(value)} - current
    wanted: dict[str, list[str]] = {}  # provider name -> the vertices that ask for it
    for vertex, node in zip(graph.names, graph.nodes, strict=True):
        for param in node.params:
            if param.name in offered and param.name not in graph.index and param.name not in values:
                wanted.setdefault(param.name, []).append(f"node '{vertex}' ({node.location})")
    fixes = [c for c in candidates if set(wanted) <= provider_names(c[2]) and _binds(flow, c[2])]
    if not wanted or not fixes:
        return None
    module, name, _ = fixes[0]
    asked = " and ".join(f"'{p}' ({', '.join(users)})" for p, users in wanted.items())
    if context is None:
        used = f"it {action} without a context"
    else:
        has = ", ".join(sorted(current)) or "none"
        used = f"it {action} with the context {name_of(context)} (providers: {has})"
    where = where_of(module)
    return (
        f"Flow '{flow.name}' asks for {asked}, which no context provides: {used}. "
        f"{name} (in {where}) provides {'them' if len(wanted) > 1 else 'it'}: {how_to_pass(where, name)}."
    )


def is_context(value: Any) -> bool:
    """A `BaseFlowContext` subclass (not the base itself) or a context instance."""
    if isinstance(value, type):
        return issubclass(value, BaseFlowContext) and value is not BaseFlowContext
    return isinstance(value, containers.DynamicContainer)


def contexts_in(module: ModuleType) -> list[str]:
    """The public names of the contexts a module defines or imports, sorted."""
    return sorted(name for name, value in vars(module).items() if not name.startswith("_") and is_context(value))


def modules_of(flow: Flow) -> list[ModuleType]:
    """The modules that define the flow's nodes: where its context most likely lives."""
    seen: dict[str, ModuleType] = {}
    for node in flow.graph.nodes:
        module = sys.modules.get(getattr(node.fn, "__module__", "") or "")
        if module is not None:
            seen.setdefault(module.__name__, module)
    return list(seen.values())


def name_of(context: Any) -> str:
    """A context's class name, for an instance too."""
    cls = context if isinstance(context, type) else type(context)
    if not isinstance(context, type) and hasattr(context, "declarative_parent"):
        cls = getattr(context, "declarative_parent", None) or cls
    return cls.__name__


def _binds(flow: Flow, context: Any) -> bool:
    try:
        flow.graph.bind(provider_names(context))
    except FlowDefinitionError:
        return False
    return True
