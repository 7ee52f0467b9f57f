"""Every error AetherFlow raises, and the one signal a node may raise (`Suspend`).

    AetherFlowError
    ├── FlowDefinitionError      the flow cannot be built (raised before any job runs)
    │   └── NodeDefinitionError  a function or an option given to @node is not usable
    ├── UsageError               a public function got an argument it cannot use
    ├── ContextProfileError      a TOML context profile cannot be loaded
    ├── MissingInputError        a job lacks a required input (raised before any node runs)
    ├── NodeError                a node failed; the user's exception is ``__cause__``
    │   ├── NodeInputError       an argument failed pydantic validation (never retried)
    │   ├── NodeOutputError      the return value failed validation or cannot be stored
    │   ├── NodeTimeoutError     one attempt ran past ``timeout``
    │   └── StateConflictError   a read-then-set lost to another commit too many times
    ├── LoopLimitError           a node ran more than ``max_iterations`` times in one job
    ├── JobCancelledError        ``result()`` of a job that was cancelled
    └── StoreError               the store cannot be opened, written or read

Each exception carries its data as attributes and builds its message from them,
saying what was expected, what was found, where, and how to fix it.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Iterable, Sequence
from typing import Any


class AetherFlowError(Exception):
    """Base class of every error raised by AetherFlow."""


class FlowDefinitionError(AetherFlowError, ValueError):
    """The flow cannot be built; ``problems`` lists every problem found at once."""

    def __init__(self, flow: str, problems: Sequence[str]) -> None:
        self.flow = flow
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = f"Flow '{flow}' is not valid: {self.problems[0]}"
        else:
            lines = "\n".join(f"  {i}. {p}" for i, p in enumerate(self.problems, 1))
            text = f"Flow '{flow}' is not valid ({len(self.problems)} problems):\n{lines}"
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:  # travels to and from Dask workers intact
        return (type(self), (self.flow, self.problems))


class NodeDefinitionError(FlowDefinitionError):
    """`@node` cannot wrap the function with these options; raised at decoration time."""

    def __init__(self, node: str, problems: Sequence[str], location: str = "?") -> None:
        super().__init__(node, problems)
        self.node = node
        self.location = location
        where = f"@node '{node}'" + (f" ({location})" if location != "?" else "")
        if len(self.problems) == 1:
            text = f"{where} cannot be made: {self.problems[0]}"
        else:
            lines = "\n".join(f"  {i}. {p}" for i, p in enumerate(self.problems, 1))
            text = f"{where} cannot be made ({len(self.problems)} problems):\n{lines}"
        self.args = (text,)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.node, self.problems, self.location))


class UsageError(AetherFlowError, TypeError):
    """A public function or method got an argument of a type or value it cannot use.

    The message names the function, the argument, what was expected and what was found;
    a lower-level exception that revealed the mistake is chained as ``__cause__``.
    """


class ContextProfileError(AetherFlowError, ValueError):
    """A context profile (TOML) cannot be loaded; ``problems`` lists every problem found."""

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(f"Context profile {path}: " + " ".join(self.problems))


class MissingInputError(AetherFlowError, LookupError):
    """A job was submitted without an input that some node requires (or without the context providing it).

    ``context_hint``, when given, is the whole message: a context the user's modules
    define provides the missing names, so the job most likely lacks that context.
    """

    def __init__(
        self, flow: str, missing: dict[str, list[str]], hints: dict[str, str], context_hint: str | None = None
    ) -> None:
        self.flow = flow
        self.missing = missing  # input name -> nodes that need it
        self.hints = hints  # input name -> "Did you mean ...?" sentence
        if context_hint is not None:
            super().__init__(context_hint)
            return
        parts = []
        for name, nodes in missing.items():
            needed = ", ".join(f"'{n}'" for n in nodes)
            part = f"input '{name}' (needed by node {needed})"
            if name in hints:
                part += f"; {hints[name][0].lower()}{hints[name][1:-1]}"
            parts.append(part)
        super().__init__(
            f"Job of flow '{flow}' is missing required "
            + "; ".join(parts)
            + ". Pass it in the job's inputs, e.g. flow.run({"
            + ", ".join(f"'{n}': ..." for n in missing)
            + "})."
        )


class NodeError(AetherFlowError):
    """A node failed. ``node``, ``job_id`` and ``attempt`` say where; the cause is chained."""

    def __init__(self, message: str, *, node: str, job_id: str | None = None, attempt: int = 1) -> None:
        self.node = node
        self.job_id = job_id
        self.attempt = attempt
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        # Across a process boundary (a Dask worker) the cause and the traceback travel too:
        # the cause as itself when it pickles, else as a RuntimeError with its text.
        state = {"__cause__": _portable(self.__cause__), "remote_traceback": "".join(traceback.format_exception(self))}
        return (_rebuild_node_error, (type(self), self.message, self.node, self.job_id, self.attempt), state)

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        cause = state.get("__cause__")
        self.__cause__ = cause if isinstance(cause, BaseException) else None
        self.remote_traceback = state.get("remote_traceback")

    def __str__(self) -> str:
        where = f"Node '{self.node}'"
        if self.job_id:
            where += f" (job {self.job_id}, attempt {self.attempt})"
        return f"{where}: {self.message}"


def _portable(exc: BaseException | None) -> BaseException | None:
    if exc is None:
        return None
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any exception a user's class raises while pickling
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _rebuild_node_error(cls: type[NodeError], message: str, node: str, job_id: str | None, attempt: int) -> NodeError:
    return cls(message, node=node, job_id=job_id, attempt=attempt)


class NodeInputError(NodeError, TypeError):
    """An argument of a node failed validation against its annotation."""


class NodeOutputError(NodeError, TypeError):
    """A node's return value failed validation, or cannot be stored."""


class NodeTimeoutError(NodeError):
    """One attempt of a node ran past its ``timeout``.

    Deliberately not a builtin `TimeoutError`: ``job.result(timeout=)`` raises that one
    when the *wait* runs out while the job is still going, so ``except TimeoutError``
    must never catch a job that failed. Catch `NodeTimeoutError` (or `NodeError`) for
    a node that overran; ``retry_on=(NodeTimeoutError,)`` retries it.
    """


class StateConflictError(NodeError):
    """A node kept losing read-then-set races on a state key."""


class LoopLimitError(AetherFlowError):
    """A node ran more often in one job than its ``max_iterations`` allows."""

    def __init__(self, node: str, limit: int, job_id: str | None = None) -> None:
        self.node = node
        self.limit = limit
        self.job_id = job_id
        super().__init__(
            f"Node '{node}' would run more than max_iterations={limit} times in job "
            f"{job_id}: the loop through it does not end. Make the branch that loops back "
            f"reach its exit, or raise the limit with @node(max_iterations=...)."
        )


class JobCancelledError(AetherFlowError):
    """``result()`` was asked of a job that was cancelled."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Job {job_id} was cancelled before it finished; it has no result.")


class JobClaimedError(AetherFlowError):
    """A job cannot be resumed here: a live worker owns it (a job has one owner at a time)."""


class StoreError(AetherFlowError):
    """The store cannot be opened, written or read."""


class Suspend(Exception):  # noqa: N818 - a signal, not an error: the name says what it does
    """Raised by a node to pause its job until ``worker.resume(job_id, inputs=...)``.

    >>> @node
    ... def approve(request, approved: bool | None = None):
    ...     if approved is None:
    ...         raise Suspend("waiting for a human to approve")
    ...     return approved
    """

    def __init__(self, reason: str = "") -> None:
        self.reason = reason
        super().__init__(reason)


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about a value a user passed.

    Never raises: an int too long to print or a broken ``__repr__`` must not hide the
    mistake the message is about.
    """
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - see above
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def closest(name: str, candidates: Iterable[str]) -> list[str]:
    """Names among ``candidates`` that look like a typo of ``name``."""
    import difflib

    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
