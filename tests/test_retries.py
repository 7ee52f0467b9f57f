"""Retries leave a trace: each failed attempt is a node run, an event and a log record."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aetherflow import NodeError, Worker, node
from aetherflow.node import Node


def flaky_node(fail_times: int, **options: Any) -> Node:
    """A node that loses its connection ``fail_times`` times, then answers "ok"."""
    calls = itertools.count(1)

    def fetch() -> str:
        n = next(calls)
        if n <= fail_times:
            raise ConnectionError(f"attempt {n} lost the connection")
        return "ok"

    return node(**options)(fetch)


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/runs.db"


def test_failed_attempts_are_node_runs_with_their_errors_and_tracebacks(store_url: str) -> None:
    """retries=2, succeeding on the third try: history shows attempts 1 and 2 failed, 3 completed."""
    fetch = flaky_node(2, retries=2)
    with Worker(threads=1, store=store_url) as w:
        job = w.submit(fetch)
        assert job.result(timeout=30) == "ok"
        runs = w.store.node_runs(job.id)
    assert [(r.node, r.attempt, r.status) for r in runs] == [
        ("fetch", 1, "failed"),
        ("fetch", 2, "failed"),
        ("fetch", 3, "completed"),
    ]
    for attempt, run in enumerate(runs[:2], 1):
        assert (
            run.error
            == f"Node 'fetch' (job {job.id}, attempt {attempt}): raised ConnectionError: attempt {attempt} lost the connection"
        )
        assert run.traceback is not None and f"ConnectionError: attempt {attempt} lost the connection" in run.traceback
        assert "in fetch" in run.traceback  # the user's frame, where it failed
        assert run.finished_at is not None and run.started_at <= run.finished_at
    assert runs[0].finished_at <= runs[1].started_at and runs[1].finished_at <= runs[2].started_at  # type: ignore[operator]
    assert runs[2].error is None


def test_failed_attempts_are_events_in_the_store(store_url: str) -> None:
    fetch = flaky_node(2, retries=2)
    with Worker(threads=1, store=store_url) as w:
        job = w.submit(fetch)
        job.result(timeout=30)
        events = w.store.events(job.id, types=["node_started", "node_failed", "node_completed"])
    assert [(e.type, e.data.get("attempt")) for e in events] == [
        ("node_started", 1),
        ("node_failed", None),
        ("node_started", 2),
        ("node_failed", None),
        ("node_started", 3),
        ("node_completed", None),
    ]
    assert events[1].data["error"].endswith("raised ConnectionError: attempt 1 lost the connection")


def test_each_failed_attempt_emits_a_node_retry_event_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    fetch = flaky_node(2, retries=2, retry_delay=0.01)
    seen: list[tuple[str, dict[str, Any]]] = []
    with (
        caplog.at_level(logging.WARNING, logger="aetherflow"),
        Worker(threads=1, on_event=lambda e, d: seen.append((e, d))) as w,
    ):
        job = w.submit(fetch)
        job.result(timeout=30)
    retries = [d for e, d in seen if e == "node_retry"]
    assert [(d["node"], d["attempt"], d["delay"], d["job"]) for d in retries] == [
        ("fetch", 1, 0.01, job.id),
        ("fetch", 2, 0.01, job.id),
    ]
    assert isinstance(retries[0]["error"], ConnectionError)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"Node 'fetch' (job {job.id}, attempt 1): raised ConnectionError: attempt 1 lost the connection; retrying in 0.01 s (attempt 2 of 3)",
        f"Node 'fetch' (job {job.id}, attempt 2): raised ConnectionError: attempt 2 lost the connection; retrying in 0.01 s (attempt 3 of 3)",
    ]


def test_a_node_that_fails_every_attempt_records_each_and_raises_the_last(store_url: str) -> None:
    fetch = flaky_node(5, retries=2)
    with Worker(threads=1, store=store_url) as w:
        job = w.submit(fetch)
        with pytest.raises(NodeError, match="attempt 3 lost the connection") as caught:
            job.result(timeout=30)
        runs = w.store.node_runs(job.id)
    assert caught.value.attempt == 3
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "failed"), (3, "failed")]


def test_async_node_failed_attempts_are_recorded_too() -> None:
    calls = itertools.count(1)

    @node(retries=1)
    async def fetch_async() -> str:
        if next(calls) == 1:
            raise ConnectionError("first try lost the connection")
        return "ok"

    with Worker(threads=1) as w:
        job = w.submit(fetch_async)
        assert job.result(timeout=30) == "ok"
        runs = w.store.node_runs(job.id)
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "completed")]
    assert runs[0].error is not None and runs[0].error.endswith("raised ConnectionError: first try lost the connection")


def test_max_delay_caps_the_backoff() -> None:
    """retry_delay * backoff**n grows fast; max_delay caps each wait."""
    fetch = flaky_node(3, retries=3, retry_delay=0.05, backoff=100.0, max_delay=0.05)
    seen: list[float] = []
    with Worker(threads=1, on_event=lambda e, d: seen.append(d["delay"]) if e == "node_retry" else None) as w:
        started = time.perf_counter()
        assert w.run(fetch) == "ok"
        took = time.perf_counter() - started
    assert seen == [0.05, 0.05, 0.05]  # uncapped: 0.05, 5, 500 seconds
    assert took < 5


def test_mapped_node_failed_attempts_name_their_item() -> None:
    failed_once: set[int] = set()

    @node
    def numbers() -> list[int]:
        return [10, 20, 30]

    @node(retries=1)
    def halve(numbers: int) -> int:
        if numbers == 20 and numbers not in failed_once:
            failed_once.add(numbers)
            raise ConnectionError("lost it")
        return numbers // 2

    with Worker(threads=2) as w:
        job = w.submit(numbers.map(halve))
        assert job.result(timeout=30) == [5, 10, 15]
        runs = w.store.node_runs(job.id)
    failed = [(r.node, r.item, r.attempt) for r in runs if r.status == "failed"]
    assert failed == [("halve", 1, 1)]


def test_a_timed_out_attempt_is_recorded_with_its_timeout_error(store_url: str) -> None:
    calls = itertools.count(1)

    @node(timeout=0.05, retries=1)
    def slow_once() -> str:
        if next(calls) == 1:
            time.sleep(0.3)
        return "ok"

    with Worker(threads=1, store=store_url) as w:
        job = w.submit(slow_once)
        assert job.result(timeout=30) == "ok"
        runs = w.store.node_runs(job.id)
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "completed")]
    assert runs[0].error == (
        f"Node 'slow_once' (job {job.id}, attempt 1): attempt 1 ran longer than timeout=0.05s and was abandoned "
        "(its writes are discarded). Make the work faster, or raise @node(timeout=...)."
    )


def test_a_re_run_after_a_state_conflict_is_recorded_as_a_failed_attempt() -> None:
    """Two nodes read k, then both set it: the loser's first attempt is in history, then its re-run."""
    both_read = threading.Barrier(2, timeout=5)

    @node
    def root() -> int:
        return 0

    def bump_node(name: str) -> Node:
        def bump(root: int, job_state: Any, execution: Any) -> int:
            value = job_state.get("k", 0)
            if execution.attempt == 1:
                both_read.wait()
            job_state.set("k", value + 1)
            return execution.attempt

        bump.__name__ = name
        return node(bump)

    with Worker(threads=2) as w:
        job = w.submit(root.fan_out_to([bump_node("left"), bump_node("right")]))
        attempts = job.result(timeout=30)
        runs = w.store.node_runs(job.id)
    loser = next(name for name, attempt in attempts.items() if attempt == 2)
    mine = [(r.attempt, r.status) for r in runs if r.node == loser]
    assert mine == [(1, "failed"), (2, "completed")]
    error = next(r.error for r in runs if r.node == loser and r.status == "failed")
    assert (
        error is not None and "state key 'k' was read at version 0" in error and error.endswith("; re-running the node")
    )
    assert job.state == {"k": 2}
