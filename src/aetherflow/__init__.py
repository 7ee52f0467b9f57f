"""AetherFlow: flows of plain functions, filled by dependency injection, with scoped state.

>>> from aetherflow import node
>>> @node
... def inc(x: int) -> int:
...     return x + 1
>>> inc.then(inc).run({"x": 0})
2
"""

from __future__ import annotations

import importlib as _importlib
import sys as _sys
import types as _types
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported on first use
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

# Public name -> the module that defines it. `import aetherflow` imports none of them (a
# command-line tool starts in a tenth of a second); `aetherflow.Worker` imports what it needs.
_EXPORTS = {
    "AetherFlowError": ".errors",
    "BaseFlowContext": ".context",
    "ContextProfileError": ".errors",
    "ExecutionContext": ".execution",
    "Flow": ".flow",
    "FlowDefinitionError": ".errors",
    "Job": ".job",
    "JobCancelledError": ".errors",
    "JobClaimedError": ".errors",
    "JobStatus": ".status",
    "JobSuspendedError": ".job",
    "LoopLimitError": ".errors",
    "MissingInputError": ".errors",
    "Node": ".node",
    "NodeDefinitionError": ".errors",
    "NodeError": ".errors",
    "NodeInputError": ".errors",
    "NodeOutputError": ".errors",
    "NodeStatus": ".status",
    "NodeTimeoutError": ".errors",
    "Scope": ".scopes",
    "StateConflictError": ".errors",
    "StateHandle": ".state",
    "StoreError": ".errors",
    "Suspend": ".errors",
    "UsageError": ".errors",
    "Worker": ".worker",
    "current_execution": ".execution",
    "load_context": ".profiles",
    "locked": ".guard",
    "node": ".node",
    "open_store": ".store",
    "providers": ".providers",  # a module
}


class _Package(_types.ModuleType):
    """The package's own type, for one name: ``node`` is both the decorator and a submodule.

    Importing the submodule binds the package attribute ``node`` to the module; this
    property keeps it the decorator, which is then imported on first use like every
    other public name (the command line starts without the flow machinery).
    """

    @property
    def node(self) -> object:
        decorator = _importlib.import_module(".node", __name__).node
        globals()["node"] = decorator  # listed by vars() and dir() like every imported name
        return decorator

    @node.setter
    def node(self, value: object) -> None:
        if not isinstance(value, _types.ModuleType):  # the import system binding the submodule: keep the decorator
            raise AttributeError("aetherflow.node is the @node decorator; it cannot be replaced")


_sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aetherflow' has no attribute {name!r}")
    value = _importlib.import_module(module, __name__)
    if name != "providers":  # the one public name that is a module itself
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
