"""A job's driver: readiness, the calling thread's share of its job, failures and cancellation recorded, nothing left hanging (driver.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aetherflow import (
    AetherFlowError,
    Flow,
    JobCancelledError,
    JobStatus,
    NodeError,
    Worker,
    node,
    open_store,
)
from shapes import RUN_INTERRUPTED_THEN_CLOSE, SLOW_TEARDOWN_CONTEXT, inc, signalled_while_tearing_down


def test_successor_of_fast_branch_does_not_wait_for_slow_sibling() -> None:
    """No super-step barrier: fast -> after runs while slow is still running."""
    slow_release = threading.Event()
    after_ran = threading.Event()

    @node
    def root() -> int:
        return 1

    @node
    def slow(root: int) -> int:
        assert slow_release.wait(5)
        return root

    @node
    def fast(root: int) -> int:
        return root

    @node
    def after(fast: int) -> int:
        after_ran.set()
        return fast

    with Worker(threads=4) as w:
        job = w.submit(Flow([root, slow, fast, after]))
        assert after_ran.wait(5), "after waited for slow"
        slow_release.set()
        assert job.result(5) == {"slow": 1, "after": 1}


def test_run_works_on_its_job_in_the_calling_thread() -> None:
    """worker.run / flow.run: the caller runs the chain itself; parallel branches use the pool."""
    ran_on: dict[str, int] = {}

    @node
    def first() -> int:
        ran_on["first"] = threading.get_ident()
        return 1

    @node
    def second(first: int) -> int:
        ran_on["second"] = threading.get_ident()
        return first + 1

    with Worker(threads=2, name="pool") as w:
        assert first.then(second).run(worker=w) == 2
        assert ran_on == {"first": threading.get_ident(), "second": threading.get_ident()}

        def where(first: int) -> str:
            return threading.current_thread().name

        names = Flow([first, *[node(where, name=f"branch{i}") for i in range(3)]]).run(worker=w)
    # one branch runs in the caller, the others on the worker's threads
    assert sorted(n.startswith("pool-") for n in names.values()) == [False, True, True]


def test_interrupt_of_a_node_running_in_the_calling_thread_ends_its_job() -> None:
    @node
    def interrupted(x: int) -> int:
        raise KeyboardInterrupt

    w = Worker(threads=1)
    with pytest.raises(KeyboardInterrupt):
        w.run(interrupted, {"x": 1})
    [record] = w.store.jobs()
    assert record.status == JobStatus.CANCELLED  # Ctrl-C cancels the job it interrupts
    assert "interrupted by KeyboardInterrupt while running node 'interrupted'" in record.error
    closing = threading.Thread(target=w.close)
    closing.start()
    closing.join(10)
    assert not closing.is_alive(), "close() waited for a job that can never finish"


def test_cancel_stops_pending_nodes(worker) -> None:
    gate = threading.Event()
    ran = []

    @node
    def first() -> int:
        gate.wait(5)
        return 1

    @node
    def second(first: int) -> int:
        ran.append("second")
        return first

    job = worker.submit(first.then(second))
    job.cancel()
    gate.set()
    with pytest.raises(JobCancelledError):
        job.result(5)
    assert job.status == "cancelled"
    assert ran == []


def test_failed_node_error_carries_node_and_job(worker) -> None:
    @node
    def boom() -> None:
        raise RuntimeError("kaput")

    job = worker.submit(boom)
    with pytest.raises(NodeError) as info:
        job.result()
    assert info.value.node == "boom" and info.value.job_id == job.id
    assert job.status == "failed"


def test_store_that_cannot_record_fails_the_node_instead_of_hanging() -> None:
    from aetherflow.store import MemoryStore

    class BrokenStore(MemoryStore):
        def record_run(self, facts):
            raise OSError("disk full")

    with Worker(threads=1, store=BrokenStore()) as w:
        job = w.submit(inc, {"x": 1})
        with pytest.raises(NodeError, match="could not be recorded.*disk full"):
            job.result(timeout=10)


def test_internal_error_fails_the_job_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:

    with Worker(threads=1) as w:

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("scheduler bug")

        monkeypatch.setattr("aetherflow.driver.call_node", broken)
        job = w.submit(inc, {"x": 1})
        with pytest.raises(AetherFlowError, match="internal error in AetherFlow while running node 'inc'"):
            job.result(timeout=10)


def test_cancelling_a_suspended_job_records_it_cancelled(worker) -> None:
    from aetherflow import JobSuspendedError, Suspend

    @node
    def wait_for_human(x: int) -> int:
        raise Suspend("later")

    job = worker.submit(wait_for_human, {"x": 1})
    with pytest.raises(JobSuspendedError):
        job.result(5)
    job.cancel()
    assert job.status == "cancelled"
    assert worker.store.job(job.id).status == "cancelled"


def test_a_map_job_that_cannot_begin_ends_failed_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """An internal error while a map job begins fails that job (result and store), and the map returns."""
    from aetherflow import AetherFlowError, Worker
    from aetherflow.scheduler import JobRun

    def broken(self: JobRun) -> list[int]:
        raise RuntimeError("broken scheduler")

    with Worker(threads=2) as w:
        monkeypatch.setattr(JobRun, "start", broken)
        out = w.map(inc, [{"x": 1}, {"x": 2}], progress=False, return_exceptions=True)
        monkeypatch.undo()
        assert [type(o) for o in out] == [AetherFlowError, AetherFlowError]
        assert "RuntimeError: broken scheduler" in str(out[0])
        assert w.store.status_counts() == {"failed": 2}


def test_a_one_node_job_on_sqlite_commits_twice(tmp_path: Path) -> None:
    """A one-node job costs SQLite two write transactions: the job's record, then its run and its end together."""
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        with Worker(threads=1, store=store) as w:
            w.run(inc, {"x": 0})  # the flow's first job also records its shape, once
            writer = store._writer  # type: ignore[attr-defined]
            before = writer.batches
            job = w.submit(inc, {"x": 1})
            assert job.result(10) == 2
            assert writer.batches - before == 2
        assert [(r.node, r.status) for r in store.node_runs(job.id)] == [("inc", "completed")]
        assert (store.job(job.id).status, store.job(job.id).output) == ("completed", 2)
        assert [e.type for e in store.events(job.id)] == [
            "job_created",
            "job_running",
            "node_started",
            "node_completed",
            "job_completed",
        ]
    finally:
        store.close()


def test_a_job_ending_on_a_completion_that_cannot_be_recorded_records_it_failed() -> None:
    """When the last node's run and the job's end cannot be recorded together, the job fails, in the store too."""
    from aetherflow.store import MemoryStore

    class RefusesEnds(MemoryStore):
        def end_job(self, *args: object, **kwargs: object) -> None:
            raise OSError("disk full")

    store = RefusesEnds()
    with Worker(threads=1, store=store) as w:
        job = w.submit(inc.then(inc), {"x": 1})
        with pytest.raises(NodeError, match="could not be recorded.*disk full") as info:
            job.result(timeout=10)
    assert info.value.node == "inc_2"
    assert job.status == "failed" and job.outputs == {"inc": 2}
    assert store.job(job.id).status == "failed"
    assert [(r.node, r.status) for r in store.node_runs(job.id)] == [("inc", "completed"), ("inc_2", "failed")]


def test_ctrl_c_while_the_calling_thread_records_a_jobs_end_still_ends_the_job() -> None:
    """Ctrl-C landing while `run`'s caller records the job's end: run() raises it, and the worker still closes."""
    from aetherflow.store import MemoryStore

    class Interrupted(MemoryStore):
        def end_job(self, *args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt

        def set_job_status(self, job_id: str, status: JobStatus, ts: float, **kwargs: object) -> None:
            if status == "completed":  # a job's end recorded apart from its last run
                raise KeyboardInterrupt
            super().set_job_status(job_id, status, ts, **kwargs)  # type: ignore[arg-type]

    w = Worker(threads=1, store=Interrupted())
    with pytest.raises(KeyboardInterrupt):
        w.run(inc, {"x": 1})
    closing = threading.Thread(target=w.close, daemon=True)
    closing.start()
    closing.join(10)
    assert not closing.is_alive(), "close() waits for a job that never ended"


def test_a_store_whose_job_end_fails_after_the_last_run_landed_does_not_record_that_run_twice() -> None:
    """A store without its own `end_job` (the base one: `record_run`, then `set_job_status`) whose end fails once.

    The last run landed (completed, with its output) before the end failed: the node must
    not also be recorded failed with "its run could not be recorded", a second start and all.
    """
    from aetherflow.store import MemoryStore

    class EndFailsOnce(MemoryStore):
        failed = False

        def set_job_status(self, job_id: str, status: JobStatus, ts: float, **kwargs: object) -> None:
            if status == "completed" and not self.failed:
                self.failed = True
                raise OSError("disk full")
            super().set_job_status(job_id, status, ts, **kwargs)  # type: ignore[arg-type]

    store = EndFailsOnce()
    with Worker(threads=1, store=store) as w:
        job = w.submit(inc.then(inc), {"x": 1})
        with pytest.raises(AetherFlowError):
            job.result(timeout=10)
    assert job.status == store.job(job.id).status == "failed"
    runs = [(r.node, r.status) for r in store.node_runs(job.id)]
    events = [(e.type, e.node) for e in store.events(job.id)]
    assert runs.count(("inc_2", "completed")) + runs.count(("inc_2", "failed")) == 1, runs
    assert events.count(("node_started", "inc_2")) == 1, events


CTRL_C_IN_TEARDOWN = (
    "TEARDOWN_SECONDS = 5\n"
    + SLOW_TEARDOWN_CONTEXT
    + """
@node
def last(x: int, scratch) -> int:
    return x * 10

w = Worker(Ctx, threads=1, store=sys.argv[1])
flow, inputs = last.named("torn"), {"x": 1}
"""
    + RUN_INTERRUPTED_THEN_CLOSE
)


def test_ctrl_c_during_a_teardown_in_runs_caller_still_ends_the_job_and_close_returns(tmp_path: Path) -> None:
    """Ctrl-C while `run`'s calling thread tears down the job's scopes (its end already recorded): close() returns."""
    import signal

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    out = signalled_while_tearing_down(CTRL_C_IN_TEARDOWN, url, signal.SIGINT)
    assert out.split() == ["INTERRUPTED", "CLOSED"], out
    store = open_store(url)
    try:
        [job] = store.jobs()
        assert job.status == "completed"
    finally:
        store.close()


def test_a_sqlite_store_subclass_still_hears_the_last_run_and_the_jobs_end(tmp_path: Path) -> None:
    """A subclass that overrides `record_run` and `set_job_status` (to audit them) hears every run and the end.

    The memory store honours such overrides (it falls back to them in `end_job`); the SQL
    store's `end_job` writes the last run and the end itself, so the subclass hears neither.
    """
    from aetherflow.runs import RunFacts
    from aetherflow.store.sqlite import SQLiteStore

    heard: list[tuple[str, str]] = []

    class Audited(SQLiteStore):
        def record_run(self, facts: RunFacts) -> None:
            heard.append(("run", facts.node))
            super().record_run(facts)

        def set_job_status(self, job_id: str, status: JobStatus, ts: float, **kwargs: object) -> None:
            heard.append(("job", status.value))
            super().set_job_status(job_id, status, ts, **kwargs)  # type: ignore[arg-type]

    store = Audited(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        with Worker(threads=1, store=store) as w:
            assert w.run(inc.then(inc), {"x": 1}) == 3
    finally:
        store.close()
    assert heard == [("run", "inc"), ("run", "inc_2"), ("job", "completed")]
