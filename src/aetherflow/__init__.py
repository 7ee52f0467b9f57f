"""AetherFlow: flows of plain functions, filled by dependency injection, with scoped state.

>>> from aetherflow import node
>>> @node
... def inc(x: int) -> int:
...     return x + 1
>>> inc.then(inc).run({"x": 0})
2
"""

from __future__ import annotations

from . import providers
from .context import BaseFlowContext
from .errors import (
    AetherFlowError,
    ContextProfileError,
    FlowDefinitionError,
    JobCancelledError,
    JobClaimedError,
    LoopLimitError,
    MissingInputError,
    NodeDefinitionError,
    NodeError,
    NodeInputError,
    NodeOutputError,
    NodeTimeoutError,
    StateConflictError,
    StoreError,
    Suspend,
    UsageError,
)
from .execution import ExecutionContext, current_execution
from .flow import Flow
from .guard import locked
from .job import Job, JobSuspendedError
from .node import Node, node
from .profiles import load_context
from .scopes import Scope
from .state import StateHandle
from .status import JobStatus, NodeStatus
from .store import open_store
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AetherFlowError",
    "BaseFlowContext",
    "ContextProfileError",
    "ExecutionContext",
    "Flow",
    "FlowDefinitionError",
    "Job",
    "JobCancelledError",
    "JobClaimedError",
    "JobStatus",
    "JobSuspendedError",
    "LoopLimitError",
    "MissingInputError",
    "Node",
    "NodeDefinitionError",
    "NodeError",
    "NodeInputError",
    "NodeOutputError",
    "NodeStatus",
    "NodeTimeoutError",
    "Scope",
    "StateConflictError",
    "StateHandle",
    "StoreError",
    "Suspend",
    "UsageError",
    "Worker",
    "current_execution",
    "load_context",
    "locked",
    "node",
    "open_store",
    "providers",
]
