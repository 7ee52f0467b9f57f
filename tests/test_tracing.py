"""OpenTelemetry: a span per job, a child span per node attempt, parentage of a user's spans, metrics.

Spans and metrics are read with the SDK's in-memory exporter and reader. OpenTelemetry's
providers are process-global and can be set only once; the fixture resets them after
each test (as OpenTelemetry's own test utilities do) so no other test is traced.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

from aetherflow import JobSuspendedError, NodeError, StateConflictError, Suspend, Worker, node


def user_tracer() -> trace.Tracer:
    """A user's tracer, from the global provider of this test (a proxy made once would keep the first one)."""
    return trace.get_tracer("user-code")


def _reset_globals() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.spans.get_finished_spans())
        return spans if name is None else [s for s in spans if s.name == name]

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name -> its data points."""
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.setdefault(m.name, []).extend(m.data.data_points)
        return out


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    t = Telemetry()
    trace.set_tracer_provider(t.tracer_provider)
    metrics.set_meter_provider(t.meter_provider)
    try:
        yield t
    finally:
        t.tracer_provider.shutdown()
        t.meter_provider.shutdown()
        _reset_globals()


def _child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return (
        span.parent is not None
        and span.parent.span_id == parent.context.span_id
        and span.context.trace_id == parent.context.trace_id
    )


@node
def load(x: int) -> int:
    return x + 1


@node
def double(load: int) -> int:
    return load * 2


def test_a_job_span_with_a_child_span_per_node(otel: Telemetry) -> None:
    flow = load.then(double)
    with Worker(threads=2, name="w-trace") as w:
        job = w.submit(flow, {"x": 1})
        assert job.result(10) == 4
    (job_span,) = otel.finished("job load")
    nodes = {s.attributes["aetherflow.node"]: s for s in otel.finished() if s.name.startswith("node ")}
    assert set(nodes) == {"load", "double"}
    assert job_span.attributes == {
        "aetherflow.flow": "load",
        "aetherflow.job_id": job.id,
        "aetherflow.worker_id": "w-trace",
        "aetherflow.status": "completed",
    }
    for name, span in nodes.items():
        assert _child_of(span, job_span)
        assert span.name == f"node {name}"
        assert dict(span.attributes) == {
            "aetherflow.flow": "load",
            "aetherflow.node": name,
            "aetherflow.job_id": job.id,
            "aetherflow.attempt": 1,
            "aetherflow.iteration": 1,
            "aetherflow.worker_id": "w-trace",
            "aetherflow.status": "completed",
        }
        assert span.status.status_code is StatusCode.UNSET


def test_retries_are_separate_attempt_spans_and_the_error_is_recorded(otel: Telemetry) -> None:
    calls = itertools.count(1)

    @node(retries=3, retry_delay=0)
    def fetch() -> str:
        if next(calls) < 3:
            raise ConnectionError("lost")
        return "ok"

    @node(retries=1, retry_delay=0)
    def broken() -> None:
        raise ValueError("bad row 7")

    with Worker(threads=2) as w:
        assert w.run(fetch) == "ok"
        with pytest.raises(NodeError, match="bad row 7"):
            w.run(broken)
    attempts = sorted(otel.finished("node fetch"), key=lambda s: s.attributes["aetherflow.attempt"])
    assert [(s.attributes["aetherflow.attempt"], s.attributes["aetherflow.status"]) for s in attempts] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert (
        attempts[0].events[0].name == "exception"
        and attempts[0].events[0].attributes["exception.type"] == "ConnectionError"
    )
    (fetch_job,) = otel.finished("job fetch")
    assert all(_child_of(s, fetch_job) for s in attempts)

    broken_attempts = otel.finished("node broken")
    assert len(broken_attempts) == 2 and all(s.status.status_code is StatusCode.ERROR for s in broken_attempts)
    (broken_job,) = otel.finished("job broken")
    assert broken_job.status.status_code is StatusCode.ERROR and "bad row 7" in (broken_job.status.description or "")
    assert broken_job.attributes["aetherflow.status"] == "failed"
    assert [e.name for e in broken_job.events] == ["exception"]


def test_map_items_carry_their_index(otel: Telemetry) -> None:
    @node
    def items() -> list[int]:
        return [10, 20, 30]

    @node
    def work(items: int) -> int:
        return items + 1

    with Worker(threads=2) as w:
        assert w.run(items.map(work)) == [11, 21, 31]
    assert sorted(s.attributes["aetherflow.item"] for s in otel.finished("node work")) == [0, 1, 2]
    assert "aetherflow.item" not in otel.finished("node items")[0].attributes


@node
def traced_work(execution) -> str:
    with user_tracer().start_as_current_span("user work"):
        return threading.current_thread().name


def _user_span_is_child_of_its_node_span(otel: Telemetry, node_name: str = "traced_work") -> None:
    (user,) = otel.finished("user work")
    (node_span,) = otel.finished(f"node {node_name}")
    assert _child_of(user, node_span)


def test_a_user_span_nests_under_the_node_span_on_a_worker_thread(otel: Telemetry) -> None:
    with Worker(threads=2, name="w-threads") as w:
        thread = w.submit(traced_work).result(10)
    assert thread.startswith("w-threads-")
    _user_span_is_child_of_its_node_span(otel)


def test_a_user_span_nests_under_the_node_span_on_the_calling_thread_of_run(otel: Telemetry) -> None:
    outer = otel.tracer_provider.get_tracer("test")
    with Worker(threads=2) as w, outer.start_as_current_span("request") as request:
        assert w.run(traced_work) == threading.current_thread().name
        assert trace.get_current_span() is request  # the node's span did not stay current here
    _user_span_is_child_of_its_node_span(otel)
    (job_span,) = otel.finished("job traced_work")
    (request_span,) = otel.finished("request")
    assert _child_of(job_span, request_span)  # a job run inside a request is part of its trace


def test_a_user_span_nests_under_the_node_span_on_the_event_loop(otel: Telemetry) -> None:
    @node
    async def fetch_async() -> str:
        with user_tracer().start_as_current_span("user work"):
            await asyncio.sleep(0)
            return threading.current_thread().name

    with Worker(threads=2, name="w-async") as w:
        assert w.run(fetch_async) == "w-async-asyncio"
    _user_span_is_child_of_its_node_span(otel, "fetch_async")


def test_a_user_span_nests_under_the_node_span_in_a_timed_out_node_thread(otel: Telemetry) -> None:
    @node(timeout=5)
    def bounded() -> str:
        with user_tracer().start_as_current_span("user work"):
            return threading.current_thread().name

    with Worker(threads=2) as w:
        assert w.run(bounded).startswith("aetherflow-timeout-")
    _user_span_is_child_of_its_node_span(otel, "bounded")


def test_suspension_and_resume_are_span_events(otel: Telemetry) -> None:
    @node
    def approve(answer=None) -> str:
        if answer is None:
            raise Suspend("needs a human")
        return answer

    with Worker(threads=2) as w:
        job = w.submit(approve)
        with pytest.raises(JobSuspendedError):
            job.result(10)
        assert w.resume(job.id, approve, answer="yes").result(10) == "yes"
    first, second = sorted(otel.finished("job approve"), key=lambda s: s.start_time or 0)
    assert first.attributes["aetherflow.status"] == "suspended"
    assert [(e.name, dict(e.attributes or {})) for e in first.events] == [
        ("aetherflow.suspended", {"aetherflow.node": "approve", "aetherflow.reason": "needs a human"})
    ]
    assert second.attributes["aetherflow.status"] == "completed"
    assert [e.name for e in second.events] == ["aetherflow.resumed"]
    suspended, resumed = sorted(otel.finished("node approve"), key=lambda s: s.start_time or 0)
    assert suspended.attributes["aetherflow.status"] == "suspended" and suspended.status.status_code is StatusCode.UNSET
    assert [e.name for e in suspended.events] == ["aetherflow.suspended"]
    assert resumed.attributes["aetherflow.status"] == "completed"


def test_metrics_count_jobs_node_durations_commits_and_conflicts(otel: Telemetry) -> None:
    @node
    def count(job_state) -> None:
        job_state.apply("n", lambda n: n + 1, 0)

    @node(conflict_retries=1)
    def greedy(job_state, execution) -> None:
        job_state.get("k", 0)
        if execution.attempt == 1:  # another commit lands between this read and this node's commit, once
            from aetherflow.state import StateHandle, commit

            spoiler = StateHandle(job_state.space)
            spoiler.set("k", 1)
            commit([spoiler], execution.job_id, "spoiler")
        job_state.set("k", -1)

    @node
    def fails() -> None:
        raise ValueError("no")

    @node
    def waits() -> None:
        raise Suspend("later")

    with Worker(threads=2, name="w-metrics") as w:
        w.map(count, [{}, {}, {}], progress=False)
        w.run(greedy)
        with pytest.raises(NodeError):
            w.run(fails)
        with pytest.raises(JobSuspendedError):
            w.run(waits)
    points = otel.metrics()

    def total(name: str, **attrs: Any) -> int:
        return sum(
            p.value
            for p in points.get(name, [])
            if all(p.attributes.get(f"aetherflow.{k}") == v for k, v in attrs.items())
        )

    assert total("aetherflow.jobs.started") == 6
    assert total("aetherflow.jobs.completed") == 4
    assert total("aetherflow.jobs.failed", flow="fails") == 1
    assert total("aetherflow.jobs.suspended", flow="waits") == 1
    assert total("aetherflow.state.commits", node="count") == 3
    assert total("aetherflow.state.conflicts", node="greedy") == 1
    durations = {
        (p.attributes["aetherflow.node"], p.attributes["aetherflow.status"]): p.count
        for p in points["aetherflow.node.duration"]
    }
    assert durations[("count", "completed")] == 3
    assert durations[("greedy", "failed")] == 1 and durations[("greedy", "completed")] == 1
    assert durations[("fails", "failed")] == 1
    assert durations[("waits", "suspended")] == 1
    queued = [
        p for p in points["aetherflow.worker.queued_nodes"] if p.attributes["aetherflow.worker_id"] == "w-metrics"
    ]
    assert queued and queued[0].value >= 0


def test_a_conflict_that_gives_up_is_an_error_span(otel: Telemetry) -> None:
    @node(conflict_retries=0)
    def greedy(job_state, execution) -> None:
        job_state.get("k", 0)
        from aetherflow.state import StateHandle, commit

        spoiler = StateHandle(job_state.space)
        spoiler.set("k", 1)
        commit([spoiler], execution.job_id, "spoiler")
        job_state.set("k", -1)

    with Worker(threads=1) as w, pytest.raises(StateConflictError):
        w.run(greedy)
    (span,) = otel.finished("node greedy")
    assert span.status.status_code is StatusCode.ERROR and span.attributes["aetherflow.status"] == "failed"


def test_without_a_provider_nothing_is_recorded_and_nothing_breaks() -> None:
    with Worker(threads=2) as w:  # made before any provider is set: tracing is off for good
        assert w._telemetry is None
        job = w.submit(load.then(double), {"x": 1})
        assert job.result(10) == 4
        assert w.run(traced_work)  # a user's spans in a node go to the API's no-op tracer
        t = Telemetry()
        trace.set_tracer_provider(t.tracer_provider)
        try:
            assert w.run(load, {"x": 1}) == 2
            assert t.finished() == []  # decided when the worker was made
        finally:
            t.tracer_provider.shutdown()
            _reset_globals()


def test_the_api_no_op_providers_count_as_none() -> None:
    trace.set_tracer_provider(trace.NoOpTracerProvider())
    metrics.set_meter_provider(metrics.NoOpMeterProvider())
    try:
        with Worker(threads=1) as w:
            assert w._telemetry is None
            assert w.run(load, {"x": 1}) == 2
    finally:
        _reset_globals()


def test_a_sampled_out_job_makes_no_node_spans_but_keeps_its_context(otel: Telemetry) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    trace._TRACER_PROVIDER = TracerProvider(sampler=ParentBased(ALWAYS_OFF))  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER.add_span_processor(SimpleSpanProcessor(otel.spans))  # type: ignore[attr-defined]

    @node
    def where() -> tuple[int, bool]:
        with user_tracer().start_as_current_span("user work") as span:
            ctx = span.get_span_context()
            return ctx.trace_id, ctx.trace_flags.sampled

    with Worker(threads=1) as w:
        trace_id, sampled = w.run(where)
    assert otel.finished() == []
    assert trace_id != 0 and not sampled  # the job's trace, sampled out: not a new root of its own


@pytest.mark.dask
@pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::RuntimeWarning", "ignore::ResourceWarning", "ignore::DeprecationWarning"
)
def test_on_dask_a_user_span_nests_under_the_drivers_node_span(otel: Telemetry) -> None:
    pytest.importorskip("distributed")
    import cloudpickle
    from distributed import Client, LocalCluster

    from aetherflow.dask import DaskWorker

    cloudpickle.register_pickle_by_value(
        sys.modules[__name__]
    )  # this test module is not importable on the Dask workers
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        client.run(_install_sdk_on_dask_worker)
        with DaskWorker(client) as w:
            job = w.submit(_dask_traced)
            pid, trace_id, parent_id = job.result(60)
            assert w.run(_dask_flaky) == 2
        remote = [s for spans in client.run(_dask_worker_spans).values() for s in spans]
    import os

    assert pid != os.getpid()  # the node ran in the Dask worker's process
    (node_span,) = otel.finished("node _dask_traced")
    (job_span,) = otel.finished("job _dask_traced")
    assert _child_of(node_span, job_span)
    assert (trace_id, parent_id) == (node_span.context.trace_id, node_span.context.span_id)
    assert remote == [
        ("user work", node_span.context.trace_id, node_span.context.span_id)
    ]  # exported by the Dask worker's own SDK
    # a retry on the cluster: the failed attempt is a span of its own, from its recorded times
    (flaky_job,) = otel.finished("job _dask_flaky")
    attempts = sorted(otel.finished("node _dask_flaky"), key=lambda s: s.attributes["aetherflow.attempt"])
    assert [
        (s.attributes["aetherflow.attempt"], s.attributes["aetherflow.status"], s.status.status_code) for s in attempts
    ] == [(1, "failed", StatusCode.ERROR), (2, "completed", StatusCode.UNSET)]
    assert all(_child_of(s, flaky_job) for s in attempts)
    assert "attempt 1 lost" in (attempts[0].status.description or "")


def _install_sdk_on_dask_worker() -> None:
    """On each Dask worker process: an SDK of its own, as a deployment configures every process."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.test_exporter = exporter  # type: ignore[attr-defined]  # found again by _dask_worker_spans
    trace.set_tracer_provider(provider)


def _dask_worker_spans() -> list[tuple[str, int, int | None]]:
    exporter = getattr(trace.get_tracer_provider(), "test_exporter", None)
    spans = exporter.get_finished_spans() if exporter is not None else ()
    return [(s.name, s.context.trace_id, s.parent.span_id if s.parent else None) for s in spans]


@node
def _dask_traced() -> tuple[int, int, int]:
    import os

    with trace.get_tracer("user-code").start_as_current_span("user work") as span:
        parent = span.parent  # type: ignore[attr-defined]
        return os.getpid(), span.get_span_context().trace_id, parent.span_id if parent else 0


@node(retries=1, retry_delay=0)
def _dask_flaky(execution) -> int:
    if execution.attempt == 1:
        raise ConnectionError("attempt 1 lost the connection")
    return execution.attempt


def test_a_timed_out_attempt_and_a_bad_input_are_error_spans_and_not_retried_wrongly(otel: Telemetry) -> None:
    from aetherflow import NodeInputError, NodeTimeoutError

    @node(timeout=0.05, retries=1, retry_delay=0)
    def slow() -> None:
        threading.Event().wait(1)

    @node(retries=3, retry_delay=0)
    def typed(n: int) -> int:
        return n

    with Worker(threads=2) as w:
        with pytest.raises(NodeTimeoutError):
            w.run(slow)
        with pytest.raises(NodeInputError):
            w.run(typed, {"n": "not a number"})
    assert [
        s.attributes["aetherflow.attempt"] for s in sorted(otel.finished("node slow"), key=lambda s: s.start_time or 0)
    ] == [1, 2]
    assert all(s.status.status_code is StatusCode.ERROR for s in otel.finished("node slow"))
    (bad,) = otel.finished("node typed")  # validation is never retried, traced or not
    assert bad.status.status_code is StatusCode.ERROR and "NodeInputError" in (bad.status.description or "")


def test_async_retries_are_separate_attempt_spans(otel: Telemetry) -> None:
    @node(retries=2, retry_delay=0)
    async def fetch_async(execution) -> int:
        if execution.attempt < 3:
            raise ConnectionError("lost")
        return execution.attempt

    with Worker(threads=1) as w:
        assert w.run(fetch_async) == 3
    spans = sorted(otel.finished("node fetch_async"), key=lambda s: s.attributes["aetherflow.attempt"])
    assert [(s.attributes["aetherflow.attempt"], s.attributes["aetherflow.status"]) for s in spans] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]
