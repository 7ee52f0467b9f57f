"""OpenTelemetry: a span per job, a child span per node attempt, and the engine's metrics.

Off and free unless the extra is installed (``pip install 'aetherflow[otel]'``) and a
tracer or meter provider is configured when a `Worker` is made: `telemetry_for` then
returns ``None`` and the worker's jobs carry ``JobCall.trace = None``, so a node pays one
``is not None`` test. The API's own no-op providers count as not configured.

When on, `invoke.call_node` / `acall_node` enter and exit the job's `JobTrace` around
each attempt (`invoke.AttemptTrace`): each attempt has its own span, made current while
the node runs, so a user's spans nest under it on a
worker thread, the calling thread of ``worker.run``, the event loop and the helper
thread of a ``timeout``. On Dask the driver makes the span and its context travels with
the task (`carrier` / `remote_parent`).

Names (see docs/observability.md): spans ``job {flow}`` and ``node {node}``; attributes
``aetherflow.flow``, ``.node``, ``.job_id``, ``.attempt``, ``.iteration``, ``.item``,
``.status``, ``.worker_id``; metrics ``aetherflow.jobs.{started,completed,failed,
suspended,cancelled}``, ``aetherflow.node.duration``, ``aetherflow.state.commits``,
``aetherflow.state.conflicts``, ``aetherflow.worker.queued_nodes``.
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .errors import Suspend
from .state import Commit, StateConflict

# The OpenTelemetry API, imported only once a worker finds it imported already (see
# `telemetry_for`): importing it costs ~60 ms, which `import aetherflow` does not pay.
otel_context: Any = None
otel_metrics: Any = None
otel_trace: Any = None
extract: Any = None
inject: Any = None
Status: Any = None
StatusCode: Any = None


def _api() -> bool:
    """Bind the OpenTelemetry API's names here; False when the extra is not installed."""
    global otel_context, otel_metrics, otel_trace, extract, inject, Status, StatusCode
    if otel_trace is None:
        try:
            from opentelemetry import context, metrics, propagate, trace
        except ImportError:
            return False
        otel_context, otel_metrics, extract, inject = context, metrics, propagate.extract, propagate.inject
        Status, StatusCode = trace.Status, trace.StatusCode
        otel_trace = trace
    return True


SCOPE = "aetherflow"  # the instrumentation scope of every tracer and meter made here


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aetherflow")
    except PackageNotFoundError:
        return "0"


# -- deciding once per worker ---------------------------------------------------------------


def telemetry_for(worker_id: str, queued: Callable[[], int]) -> Telemetry | None:
    """The worker's telemetry, or ``None`` when there is nothing to report to.

    Decided once, when the worker is made: configure OpenTelemetry before creating a
    `Worker` (the default worker is made by the first ``flow.run()``). ``queued`` counts
    the node calls waiting for a thread, for the ``queued_nodes`` gauge.
    """
    if "opentelemetry.trace" not in sys.modules and "opentelemetry.metrics" not in sys.modules:
        return None  # never imported, so no provider was set: stay off without importing it
    if not _api():
        return None
    tracer = _configured_tracer()
    instruments = _configured_instruments()
    if tracer is None and instruments is None:
        return None
    telemetry = Telemetry(worker_id, tracer, instruments)
    if instruments is not None:
        _queues[telemetry] = queued
    return telemetry


def _configured_tracer() -> Any:
    provider = otel_trace.get_tracer_provider()
    if isinstance(provider, (otel_trace.ProxyTracerProvider, otel_trace.NoOpTracerProvider)):
        return None  # nothing set, or the API's no-op: nothing would be recorded
    return provider.get_tracer(SCOPE, _version())


class Instruments:
    """The metric instruments of one meter provider."""

    def __init__(self, meter: Any) -> None:
        self.started = meter.create_counter("aetherflow.jobs.started", "{job}", "Jobs started (resumed ones included)")
        self.ended = {
            status: meter.create_counter(f"aetherflow.jobs.{status}", "{job}", f"Jobs that ended {status}")
            for status in ("completed", "failed", "suspended", "cancelled")
        }
        self.duration = meter.create_histogram("aetherflow.node.duration", "s", "Duration of one node attempt")
        self.commits = meter.create_counter(
            "aetherflow.state.commits", "{commit}", "State commits (one per state scope a node wrote)"
        )
        self.conflicts = meter.create_counter(
            "aetherflow.state.conflicts", "{conflict}", "Node attempts re-run because a read-then-set lost a race"
        )
        meter.create_observable_gauge(
            "aetherflow.worker.queued_nodes", [_observe_queues], "{node}", "Node calls waiting for a worker thread"
        )


# One set of instruments per meter provider (made again only if the global provider changes).
_instruments: tuple[Any, Instruments] | None = None
_instruments_lock = threading.Lock()
# Telemetry of live workers -> how many node calls wait in their queue (read by the gauge).
_queues: weakref.WeakKeyDictionary[Telemetry, Callable[[], int]] = weakref.WeakKeyDictionary()


def _configured_instruments() -> Instruments | None:
    global _instruments
    provider = otel_metrics.get_meter_provider()
    if type(provider).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider"):
        return None  # nothing set, or the API's no-op
    with _instruments_lock:
        if _instruments is None or _instruments[0] is not provider:
            _instruments = (provider, Instruments(provider.get_meter(SCOPE, _version())))
        return _instruments[1]


def _observe_queues(options: Any) -> Iterator[Any]:
    for telemetry, queued in list(_queues.items()):
        yield otel_metrics.Observation(queued(), {"aetherflow.worker_id": telemetry.worker_id})


class Telemetry:
    """What one worker reports to: its tracer and instruments (either may be ``None``)."""

    def __init__(self, worker_id: str, tracer: Any, instruments: Instruments | None) -> None:
        self.worker_id = worker_id
        self.tracer = tracer
        self.instruments = instruments

    def start_job(self, job_id: str, flow: str, resumed: bool = False) -> JobTrace:
        """The span of a job starting (or resuming) on this worker; ended by `JobTrace.finished`."""
        attributes = {"aetherflow.flow": flow, "aetherflow.job_id": job_id, "aetherflow.worker_id": self.worker_id}
        if self.instruments is not None:
            self.instruments.started.add(1, {"aetherflow.flow": flow, "aetherflow.resumed": resumed})
        if self.tracer is None:
            return JobTrace(self, flow, job_id, otel_trace.INVALID_SPAN)
        # Under the caller's current span, if any (a request that runs a flow): its trace goes on.
        span = self.tracer.start_span(f"job {flow}", attributes=attributes)
        if resumed:
            span.add_event("aetherflow.resumed", {"aetherflow.job_id": job_id})
        return JobTrace(self, flow, job_id, span)


# -- one job ---------------------------------------------------------------------------------


class JobTrace:
    """A job's span, and the spans of its node attempts under it (``JobCall.trace``)."""

    __slots__ = ("flow", "instruments", "job_id", "nodes_traced", "parent", "span", "telemetry", "worker_id")

    def __init__(self, telemetry: Telemetry, flow: str, job_id: str, span: Any) -> None:
        self.telemetry = telemetry
        self.instruments = telemetry.instruments
        self.worker_id = telemetry.worker_id
        self.flow, self.job_id, self.span = flow, job_id, span
        # A sampled-out job still hands its context to its nodes, so a user's span there is
        # sampled out too (ParentBased) instead of starting a trace of its own; but no node
        # span is made for it: it would not be recorded either.
        self.nodes_traced = span.is_recording()
        self.parent = otel_trace.set_span_in_context(span, otel_context.Context())

    # -- spans of node attempts

    def begin(self, name: str, iteration: int, attempt: int, item: int | None, start: float | None = None) -> Any:
        """Start the span of one attempt; None when the job's span is not recorded."""
        if not self.nodes_traced:
            return None
        attributes: dict[str, Any] = {
            "aetherflow.flow": self.flow,
            "aetherflow.node": name,
            "aetherflow.job_id": self.job_id,
            "aetherflow.attempt": attempt,
            "aetherflow.iteration": iteration,
            "aetherflow.worker_id": self.worker_id,
        }
        if item is not None:
            attributes["aetherflow.item"] = item
        start_time = None if start is None else int(start * 1e9)
        return self.telemetry.tracer.start_span(
            f"node {name}", context=self.parent, attributes=attributes, start_time=start_time
        )

    def end(
        self,
        span: Any,
        name: str,
        started: float,
        outcome: BaseException | Sequence[Commit] | None,
        end: float | None = None,
    ) -> None:
        """End an attempt's span: ``outcome`` is its commits when it completed, else its error."""
        instruments = self.instruments
        if span is None and instruments is None:
            return  # a sampled-out job without metrics: nothing to tell
        now = time.time() if end is None else end
        status = "completed" if not isinstance(outcome, BaseException) else _attempt_status(outcome)
        if span is not None:
            _end_span(span, status, outcome, now)
        if instruments is not None:
            attributes = {"aetherflow.flow": self.flow, "aetherflow.node": name, "aetherflow.status": status}
            instruments.duration.record(max(0.0, now - started), attributes)
            if status == "completed" and outcome:
                instruments.commits.add(len(outcome), {"aetherflow.flow": self.flow, "aetherflow.node": name})  # type: ignore[arg-type]
            elif isinstance(outcome, StateConflict):
                instruments.conflicts.add(1, {"aetherflow.flow": self.flow, "aetherflow.node": name})

    def record_attempt(
        self, name: str, iteration: int, attempt: int, item: int | None, started: float, ended: float, error: str
    ) -> None:
        """A failed attempt made elsewhere (on a Dask worker), as a span from its recorded times."""
        span = self.begin(name, iteration, attempt, item, started)
        self.end(span, name, started, _RemoteError(error), ended)

    # -- invoke.call_node's attempts, traced (`invoke.AttemptTrace`)

    def enter(self, name: str, iteration: int, attempt: int, item: int | None) -> tuple[Any, Any]:
        """Start an attempt's span and make it current, so a user's spans in the node nest under it."""
        span = self.begin(name, iteration, attempt, item)
        token = otel_context.attach(self.parent if span is None else otel_trace.set_span_in_context(span, self.parent))
        return span, token

    def exit(
        self, entered: tuple[Any, Any], name: str, started: float, outcome: BaseException | Sequence[Commit] | None
    ) -> None:
        """End what `enter` started: ``outcome`` is the attempt's commits when it completed, else its error."""
        span, token = entered
        otel_context.detach(token)
        self.end(span, name, started, outcome)

    # -- the end of the job

    def finished(self, status: str, error: BaseException | None, suspended: tuple[str, str] | None) -> None:
        """End the job's span with its final status, and count the job by it."""
        span = self.span
        span.set_attribute("aetherflow.status", status)
        if status == "suspended" and suspended is not None:
            span.add_event("aetherflow.suspended", {"aetherflow.node": suspended[0], "aetherflow.reason": suspended[1]})
        elif status == "failed":
            if error is not None:
                span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error) if error is not None else "failed"))
        span.end()
        counter = self.instruments.ended.get(status) if self.instruments is not None else None
        if counter is not None:
            counter.add(1, {"aetherflow.flow": self.flow})

    # -- Dask: the driver makes the span, the task carries its context

    def carrier(self, span: Any) -> dict[str, str]:
        """The W3C trace context of ``span`` (or of the job, when it has none), to travel with a task (see `remote_parent`)."""
        carrier: dict[str, str] = {}
        inject(carrier, self.parent if span is None else otel_trace.set_span_in_context(span, self.parent))
        return carrier


def _end_span(span: Any, status: str, outcome: Any, now: float) -> None:
    if status == "suspended":
        span.add_event("aetherflow.suspended", {"aetherflow.reason": getattr(outcome, "reason", "")})
    elif status == "failed":
        span.record_exception(outcome)
        span.set_status(Status(StatusCode.ERROR, f"{type(outcome).__name__}: {outcome}"))
    span.set_attribute("aetherflow.status", status)
    span.end(int(now * 1e9))


class _RemoteError(Exception):
    """The error of an attempt made on a Dask worker, as its record tells it."""


def _attempt_status(exc: BaseException) -> str:
    return "suspended" if isinstance(exc, Suspend) else "failed"


@contextmanager
def remote_parent(carrier: dict[str, str] | None) -> Iterator[None]:
    """On a Dask worker: make the driver's node span current while the node runs there."""
    if carrier is None or not _api():
        yield
        return
    token = otel_context.attach(extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)
