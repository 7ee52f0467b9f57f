"""Where a node runs: the one `ExecutionContext` held in one `ContextVar` (seed 001).

The worker sets it at the single entry where it calls a node, so anything running inside
a node (a provider, a state handle, user code) reads the same facts from the same place.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """Facts about the node call in progress; injectable as ``execution``.

    >>> @node
    ... def where(execution):
    ...     return f"{execution.flow}.{execution.node} try {execution.attempt}"
    """

    worker_id: str
    job_id: str
    flow: str
    node: str
    iteration: int = 1
    attempt: int = 1
    # The job's scope caches: how scoped providers find their instance. Private.
    scopes: Any = field(default=None, repr=False, compare=False)


_current: ContextVar[ExecutionContext | None] = ContextVar("aetherflow_execution", default=None)


def current_execution() -> ExecutionContext | None:
    """The `ExecutionContext` of the node running in this thread or task, else ``None``."""
    return _current.get()
