"""Calling one node: fill its arguments, set the `ExecutionContext`, retry, time out, commit.

This is the single place where user code runs. Everything a call needs that is fixed for
the whole job is gathered once in `JobCall`; per call, only the arguments, the state
handles and the `ExecutionContext` are new.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
import typing
from collections.abc import Callable, Sequence
from contextvars import Token
from dataclasses import dataclass
from traceback import format_exception
from typing import Any, Protocol

from pydantic import ValidationError

from .errors import NodeError, NodeInputError, NodeOutputError, NodeTimeoutError, StateConflictError, Suspend
from .execution import ExecutionContext, Running, _current
from .graph import (
    B_ANSWER,
    B_EXECUTION,
    B_INPUT,
    B_ITEM,
    B_JOB_STATE,
    B_JOIN,
    B_NODE,
    B_NODE_STATE,
    B_PROVIDER,
    Binding,
    VertexPlan,
)
from .node import Node
from .runs import RunFields
from .scopes import JobScopes
from .sentinels import UNSET
from .state import Commit, StateConflict, StateHandle, StateSpace, commit
from .status import NodeStatus

log = logging.getLogger("aetherflow.invoke")
FAILED = NodeStatus.FAILED  # read once: an enum member lookup is slow in Python 3.11


class RunView(Protocol):
    """What a node call reads of its job: a `JobRun` here, a snapshot of one on a Dask worker."""

    job_id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]

    @property
    def job_space(self) -> StateSpace: ...

    def node_space(self, name: str) -> StateSpace: ...

    def answer_to(self, i: int, iteration: int, item: int | None, default: Any) -> Any: ...


def _unrecorded(fields: RunFields) -> None:
    """Runs of a call made away from the driver (on a Dask worker) are recorded by the driver."""


@dataclass(slots=True)
class JobCall:
    """What every node call of one job shares."""

    run: RunView
    worker_id: str
    flow: str
    injectors: dict[str, Callable[[], Any]]
    scopes: JobScopes
    worker_space: Callable[[str, str], StateSpace]  # (flow, node) -> the worker_state space
    check_value: Callable[[Any, str, str], None] | None  # raises NodeOutputError if not storable
    commit: Callable[[list[StateHandle], str, str], list[Commit]] = commit  # Dask defers it to the driver
    context: Any = None  # the context instance the job resolves providers from
    observed: bool = False  # someone listens to per-node events (hooks or DEBUG logs)
    record_run: Callable[[RunFields], None] = _unrecorded  # where the worker records this job's runs
    emit: Callable[..., None] | None = None  # the worker's event hooks: emit("node_retry", **data)
    taken_over: bool = False  # another process claimed the job: this one records nothing more of it
    trace: Any = None  # a tracing.JobTrace (an `AttemptTrace`, and more) when OpenTelemetry is on for this job


class AttemptTrace(Protocol):
    """What traces a node's attempts (`tracing.JobTrace`): entered before, exited after each one."""

    def enter(self, name: str, iteration: int, attempt: int, item: int | None) -> Any: ...

    def exit(self, span: Any, name: str, started: float, outcome: BaseException | Sequence[Commit] | None) -> None: ...


# A completed call: ``(output, commits, attempt, started)`` — its validated output, the
# commits it made, the attempt that won and when that attempt started. A plain tuple, not
# a NamedTuple: one is made per node call.
Outcome = tuple[Any, Sequence[Commit], int, float]


class _Attempts:
    """Retry policy of one node call: ``retries`` with backoff for ``retry_on``, conflicts apart."""

    __slots__ = ("attempt", "conflicts", "job_id", "name", "node")

    def __init__(self, node: Node, name: str, job_id: str) -> None:
        self.node, self.name, self.job_id = node, name, job_id
        self.attempt = 0
        self.conflicts = 0

    def delay_after(self, exc: BaseException) -> float:
        """Seconds to wait before trying again, or raise the error that ends the call."""
        node = self.node
        if isinstance(exc, StateConflict):
            self.conflicts += 1
            if self.conflicts > node.conflict_retries:
                raise StateConflictError(
                    f"{exc}; gave up after {node.conflict_retries} re-runs. Use "
                    "job_state.apply(key, fn) for read-modify-write, which never conflicts, "
                    "or raise @node(conflict_retries=...).",
                    node=self.name,
                    job_id=self.job_id,
                    attempt=self.attempt,
                ) from exc
            return 0.0
        if isinstance(exc, (NodeInputError, NodeOutputError, Suspend)):
            raise exc  # validation is never retried; Suspend pauses the job
        retryable = isinstance(exc, node.retry_on) and self.attempt - self.conflicts <= node.retries
        if retryable:
            return self._backoff(self.attempt - self.conflicts - 1)
        if isinstance(exc, NodeError):
            raise exc
        raise NodeError(
            f"raised {type(exc).__name__}: {exc}", node=self.name, job_id=self.job_id, attempt=self.attempt
        ) from exc

    def _backoff(self, n: int) -> float:
        """``retry_delay * backoff**n``, capped by ``max_delay``."""
        node = self.node
        try:
            delay = node.retry_delay * node.backoff**n
        except OverflowError:
            delay = float("inf")
        return delay if node.max_delay is None else min(delay, node.max_delay)


# A NamedTuple's own __new__ is Python code; tuple's is C and several times cheaper. An
# `ExecutionContext` is built per node call.
_new = tuple.__new__
_NO_HANDLES: list[StateHandle] = []  # shared by the calls of nodes without state: never appended to


def _arguments(
    call: JobCall, vp: VertexPlan, ex: ExecutionContext, handles: list[StateHandle], item: Any, item_index: int | None
) -> list[Any]:
    """The node's arguments, in parameter order."""
    run = call.run
    args: list[Any] = []
    for b in vp.bindings:
        kind = b.kind
        if kind == B_NODE:
            value = run.outputs.get(b.key, UNSET)  # UNSET: from a skipped node
        elif kind == B_INPUT:
            value = run.inputs.get(b.key, UNSET)
        elif kind == B_PROVIDER:
            args.append(call.injectors[b.key]())
            continue
        elif kind == B_ITEM:
            value = item
        elif kind == B_JOIN:
            value = {src: run.outputs[src] for src in b.key if src in run.outputs}
        elif kind == B_EXECUTION:
            args.append(ex)
            continue
        elif kind == B_ANSWER:
            value = run.answer_to(vp.index, ex.iteration, item_index, UNSET)
            if value is UNSET:  # every run but the one resuming the suspension
                args.append(None if b.default is UNSET else b.default)
                continue
        else:
            handle = StateHandle(_state_space(call, vp, kind))
            handles.append(handle)
            args.append(handle)
            continue
        if value is UNSET:
            args.append(_default(b, vp, ex))
        elif b.check is not None and type(value) is not b.exact:
            args.append(_valid_input(b, vp, ex, value))
        else:
            args.append(value)
    return args


def _default(b: Binding, vp: VertexPlan, ex: ExecutionContext) -> Any:
    """An absent value's stand-in: the parameter's default, as a call by name would use it."""
    if b.default is UNSET:
        raise NodeInputError(
            f"parameter '{b.param}' got no value from {_source(b.kind, b.key)} and has no default. "
            "Give the parameter a default, or make sure its source runs.",
            node=vp.name,
            job_id=ex.job_id,
            attempt=ex.attempt,
        )
    return b.default


def _valid_input(b: Binding, vp: VertexPlan, ex: ExecutionContext, value: Any) -> Any:
    try:
        return b.check(value) if b.check is not None else value
    except ValidationError as exc:
        secret = vp.node.is_secret(b.param)  # pydantic's message and error quote the input: neither may show
        got = f"a {type(value).__name__} (value hidden: the parameter is secret)" if secret else _short(value)
        raise NodeInputError(
            f"parameter '{b.param}' got {got}, which is not valid for "
            f"{_type_name(vp.node.annotation(b.param))}: {_first_error(exc)}. "
            f"Fix the value passed in (from {_source(b.kind, b.key)}) or the annotation.",
            node=vp.name,
            job_id=ex.job_id,
            attempt=ex.attempt,
        ) from (None if secret else exc)


def _state_space(call: JobCall, vp: VertexPlan, kind: int) -> StateSpace:
    if kind == B_JOB_STATE:
        return call.run.job_space
    if kind == B_NODE_STATE:
        return call.run.node_space(vp.name)
    return call.worker_space(call.flow, vp.name)


def _finish(
    call: JobCall, vp: VertexPlan, ex: ExecutionContext, value: Any, handles: list[StateHandle], started: float
) -> Outcome:
    """Validate the return value, check it can be stored, and commit the node's state."""
    output = value
    if vp.check_output is not None and type(value) is not vp.output_exact:
        try:
            output = vp.check_output(value)
        except ValidationError as exc:
            raise NodeOutputError(
                f"returned {_short(value)}, which is not valid for its return annotation "
                f"{_type_name(vp.node.annotation('return'))}: {_first_error(exc)}.",
                node=vp.name,
                job_id=ex.job_id,
                attempt=ex.attempt,
            ) from exc
    if call.check_value is not None:
        call.check_value(output, vp.name, "output")
        for h in handles:
            for key, v in h.pending_values():
                call.check_value(v, vp.name, f"{h.space.scope.value}_state['{key}']")
    commits = call.commit(handles, ex.job_id, vp.name) if handles else ()
    return output, commits, ex.attempt, started


def _enter(
    call: JobCall, vp: VertexPlan, iteration: int, attempt: int
) -> tuple[ExecutionContext, Token[Running | None]]:
    """The one place the `ExecutionContext` of a node call is made and set (seed 001)."""
    ex: ExecutionContext = _new(
        ExecutionContext, (call.worker_id, call.run.job_id, call.flow, vp.name, iteration, attempt)
    )
    return ex, _current.set((ex, call.scopes))


def call_node(
    call: JobCall,
    vp: VertexPlan,
    iteration: int,
    item: Any = UNSET,
    item_index: int | None = None,
    started: float | None = None,
) -> Outcome:
    """Run a sync node to a committed outcome, or raise its `NodeError` (or `Suspend`).

    ``item_index`` and ``started`` (when the worker started the call) go into the records
    of failed attempts; the outcome carries when the attempt that won started. A traced
    job (``call.trace``) has each attempt in its own span; untraced, that costs two
    ``is not None`` tests per attempt.
    """
    node = vp.node
    trace: AttemptTrace | None = call.trace
    attempts: _Attempts | None = None  # built on the first failure: most calls never need it
    attempt = 1
    if started is None:
        started = time.time()
    while True:
        ex, token = _enter(call, vp, iteration, attempt)
        if trace is not None:
            span = trace.enter(vp.name, iteration, attempt, item_index)
        outcome: BaseException | Sequence[Commit] | None = None
        handles: list[StateHandle] = [] if vp.uses_state else _NO_HANDLES
        try:
            args = _arguments(call, vp, ex, handles, item, item_index)
            if node.timeout is None:
                value = node.call_positional(*args)
            else:
                value = _call_with_timeout(node.call_positional, args, node.timeout, vp.name, ex, call.scopes)
            if (
                handles
                or call.check_value is not None
                or (type(value) is not vp.output_exact and vp.check_output is not None)
            ):
                result = _finish(call, vp, ex, value, handles, started)
                outcome = result[1]
                return result
            outcome = ()
            return value, (), attempt, started  # nothing to validate, store-check or commit
        except Exception as exc:  # noqa: BLE001 - the retry policy decides what ends the call
            outcome = exc
            if attempts is None:
                attempts = _Attempts(node, vp.name, call.run.job_id)
            attempts.attempt = attempt
            delay = _delay_or_raise(attempts, exc, started)
            _failed_attempt(
                call, vp, ex, item_index, started, exc, delay, attempts.conflicts, threading.current_thread().name
            )
        except BaseException as exc:  # Ctrl-C in the node: a traced attempt still ends
            outcome = exc
            raise
        finally:
            if trace is not None:
                trace.exit(span, vp.name, started, outcome)
            _current.reset(token)
        attempt += 1
        if delay:
            time.sleep(delay)
        started = time.time()


async def acall_node(
    call: JobCall,
    vp: VertexPlan,
    iteration: int,
    item: Any = UNSET,
    item_index: int | None = None,
    started: float | None = None,
) -> Outcome:
    """`call_node` for ``async def`` nodes, on the worker's event loop."""
    node = vp.node
    trace: AttemptTrace | None = call.trace
    attempts = _Attempts(node, vp.name, call.run.job_id)
    attempt = 1
    if started is None:
        started = time.time()
    while True:
        ex, token = _enter(call, vp, iteration, attempt)
        if trace is not None:
            span = trace.enter(vp.name, iteration, attempt, item_index)
        outcome: BaseException | Sequence[Commit] | None = None
        handles: list[StateHandle] = []
        try:
            args = _arguments(call, vp, ex, handles, item, item_index)
            if node.timeout is None:
                value = await node.call_positional(*args)
            else:
                try:
                    value = await asyncio.wait_for(node.call_positional(*args), node.timeout)
                except TimeoutError:
                    raise _timeout_error(vp.name, ex, node.timeout) from None
            result = _finish(call, vp, ex, value, handles, started)
            outcome = result[1]
            return result
        except Exception as exc:  # noqa: BLE001 - the retry policy decides what ends the call
            outcome = exc
            attempts.attempt = attempt
            delay = _delay_or_raise(attempts, exc, started)
            _failed_attempt(call, vp, ex, item_index, started, exc, delay, attempts.conflicts, "asyncio")
        except BaseException as exc:  # cancelled: a traced attempt still ends
            outcome = exc
            raise
        finally:
            if trace is not None:
                trace.exit(span, vp.name, started, outcome)
            _current.reset(token)
        attempt += 1
        if delay:
            await asyncio.sleep(delay)
        started = time.time()


def _delay_or_raise(attempts: _Attempts, exc: Exception, started: float) -> float:
    """`_Attempts.delay_after`; an error that ends a retried call says when its last attempt started."""
    try:
        return attempts.delay_after(exc)
    except NodeError as final:
        if attempts.attempt > 1:  # the worker records the last attempt's run from then, after the failed ones
            final.attempt_started = started  # type: ignore[attr-defined]
        raise


def _failed_attempt(
    call: JobCall,
    vp: VertexPlan,
    ex: ExecutionContext,
    item_index: int | None,
    started: float,
    exc: Exception,
    delay: float,
    conflicts: int,
    thread: str,
) -> None:
    """Leave a trace of an attempt that failed and will be tried again: a node run, a log record, an event.

    Its state writes are discarded (they were never committed); only the facts are kept.
    """
    conflict = isinstance(exc, StateConflict)
    error = _attempt_error(exc, vp.name, ex, conflict)
    try:
        call.record_run(
            (
                vp.name,
                ex.iteration,
                ex.attempt,
                FAILED,
                thread,
                started,
                time.time(),
                UNSET,
                (),
                str(error),
                "".join(format_exception(exc)),
                item_index,
            )
        )
    except Exception:  # the call goes on; the log has the failure
        log.error(
            "Could not record failed attempt %d of '%s' in job %s",
            ex.attempt,
            vp.name,
            ex.job_id,
            exc_info=True,
            extra={"job_id": ex.job_id, "node": vp.name},
        )
    extra = {"job_id": ex.job_id, "node": vp.name, "attempt": ex.attempt}
    if conflict:  # routine under contention, and bounded by conflict_retries, not by retries
        log.info("%s (attempt %d)", error, ex.attempt + 1, extra=extra)
    else:
        total = 1 + vp.node.retries + conflicts  # a conflict re-run does not use up a retry
        log.warning("%s; retrying in %.3g s (attempt %d of %d)", error, delay, ex.attempt + 1, total, extra=extra)
    if call.emit is not None:
        call.emit("node_retry", job=ex.job_id, node=vp.name, attempt=ex.attempt, error=exc, delay=delay)


def _attempt_error(exc: Exception, name: str, ex: ExecutionContext, conflict: bool) -> NodeError:
    """The error of a failed attempt as the final one would read (a `NodeError` already does)."""
    if isinstance(exc, NodeError):  # a timeout: already says which node, job and attempt
        return exc
    message = f"{exc}; re-running the node" if conflict else f"raised {type(exc).__name__}: {exc}"
    return NodeError(message, node=name, job_id=ex.job_id, attempt=ex.attempt)


def _call_with_timeout(
    fn: Callable[..., Any], args: list[Any], timeout: float, name: str, ex: ExecutionContext, scopes: JobScopes | None
) -> Any:
    # Python cannot stop a thread: an overrunning call is abandoned on a helper thread and
    # its state handles are dropped with it, so its writes never commit. Its job's scope
    # stays open until it returns: its job- and node-scoped instances are not torn down
    # under its feet.
    box: list[tuple[bool, Any]] = []
    done = threading.Event()
    lock = threading.Lock()
    release: list[Callable[[], None]] = []  # set when the caller gave up waiting

    def target() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box.append((False, exc))
        finally:
            with lock:
                done.set()
            for r in release:
                r()

    ctx = contextvars.copy_context()
    threading.Thread(target=ctx.run, args=(target,), name=f"aetherflow-timeout-{name}", daemon=True).start()
    if not done.wait(timeout):
        with lock:
            if not done.is_set() and scopes is not None:
                release.append(scopes.hold())
        raise _timeout_error(name, ex, timeout)
    ok, value = box[0]
    if ok:
        return value
    raise value


def _timeout_error(name: str, ex: ExecutionContext, timeout: float) -> NodeTimeoutError:
    return NodeTimeoutError(
        f"attempt {ex.attempt} ran longer than timeout={timeout}s and was abandoned (its writes are "
        "discarded). Make the work faster, or raise @node(timeout=...).",
        node=name,
        job_id=ex.job_id,
        attempt=ex.attempt,
    )


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - an int too long to print, a broken __repr__: still explain the error
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Annotated:  # name the constraints: they are the point
        base, *extras = typing.get_args(annotation)
        shown = [repr(m) for e in extras for m in (getattr(e, "metadata", None) or [e])]
        return f"Annotated[{_type_name(base)}, {', '.join(shown)}]"
    return getattr(annotation, "__name__", None) or repr(annotation)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    e = errors[0]
    loc = ".".join(str(p) for p in e.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (f"{loc}: " if loc else "") + e.get("msg", "") + more


def _source(kind: int, key: Any) -> str:
    if kind == B_INPUT:
        return f"job input '{key}'"
    if kind == B_ITEM:
        return f"an item of node '{key}'"
    if kind == B_JOIN:
        return "the joined nodes " + ", ".join(f"'{k}'" for k in key)
    return f"node '{key}'"
