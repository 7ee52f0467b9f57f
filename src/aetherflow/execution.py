"""Where a node runs: the one `ExecutionContext` held in one `ContextVar` (seed 001).

The worker sets it at the single entry where it calls a node, so anything running inside
a node (a provider, a state handle, user code) reads the same facts from the same place.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, NamedTuple


class ExecutionContext(NamedTuple):
    """Facts about the node call in progress (immutable); injectable as ``execution``.

    >>> @node
    ... def where(execution):
    ...     return f"{execution.flow}.{execution.node} try {execution.attempt}"
    """

    # A NamedTuple, not a frozen dataclass: one is built per node call, and a frozen
    # dataclass's __init__ costs several times more.
    worker_id: str
    job_id: str
    flow: str
    node: str
    iteration: int = 1
    attempt: int = 1


# The node call in progress: its `ExecutionContext`, and the job's scope caches that scoped
# providers draw from (the engine's, not a fact for users: hence beside it, not in it).
Running = tuple[ExecutionContext, Any]
_current: ContextVar[Running | None] = ContextVar("aetherflow_execution", default=None)


def current_execution() -> ExecutionContext | None:
    """The `ExecutionContext` of the node running in this thread or task, else ``None``."""
    running = _current.get()
    return None if running is None else running[0]
