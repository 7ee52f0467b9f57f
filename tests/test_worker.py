"""Worker: many jobs at once, no step barrier, async nodes, retries, timeouts, cancel, events."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aetherflow import (
    AetherFlowError,
    ExecutionContext,
    Flow,
    JobCancelledError,
    JobStatus,
    MissingInputError,
    NodeError,
    NodeTimeoutError,
    Worker,
    node,
)


@node
def inc(x: int) -> int:
    return x + 1


def test_submit_returns_job_with_live_status_and_outputs(worker) -> None:
    gate = threading.Event()

    @node
    def wait(x: int) -> int:
        gate.wait(5)
        return x

    job = worker.submit(inc.then(wait), {"x": 1})
    assert job.status == JobStatus.RUNNING == "running"
    gate.set()
    assert job.result(timeout=5) == 2
    assert job.status == "completed"
    assert job.outputs == {"inc": 2, "wait": 2}


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


def test_independent_nodes_run_in_parallel_threads() -> None:
    barrier = threading.Barrier(4, timeout=5)

    @node
    def root() -> int:
        return 0

    branches = []
    for i in range(4):

        def meet(root: int) -> str:
            barrier.wait()  # only passes if 4 nodes run at the same time
            return threading.current_thread().name

        meet.__name__ = f"meet{i}"
        branches.append(node(meet))
    with Worker(threads=4) as w:
        out = root.fan_out_to(branches).run(worker=w)
    assert len(set(out.values())) == 4


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


def test_a_node_can_run_a_nested_chain_on_its_own_single_thread_worker() -> None:
    """The nested run works in the node's thread, so the one worker thread is not needed twice."""
    with Worker(threads=1) as w:
        inner = inc.then(inc).then(inc)

        @node
        def outer(x: int) -> int:
            return inner.run({"x": x}, worker=w)

        job = w.submit(outer, {"x": 1})
        assert job.result(10) == 4


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


def test_many_jobs_of_many_flows_at_once() -> None:
    @node
    def square(x: int) -> int:
        return x * x

    with Worker(threads=8) as w:
        jobs = [w.submit(inc if i % 2 else square, {"x": i}) for i in range(400)]
        results = [j.result(30) for j in jobs]
    assert results == [i + 1 if i % 2 else i * i for i in range(400)]


def test_map_returns_outputs_in_input_order(worker) -> None:
    assert worker.map(inc, [{"x": i} for i in range(50)], progress=False) == list(range(1, 51))


def test_map_jobs_waiting_for_a_thread_hold_few_objects() -> None:
    """A long map holds little per job until a thread starts it: each object is one more for every GC to walk."""
    gate = threading.Event()

    @node
    def hold(i: int) -> int:
        if i == 0:
            gate.wait(10)  # keeps the one thread busy: every other job of the map waits
        return i

    n = 2000
    many = [{"i": i} for i in range(n)]
    out: list[Any] = []
    with Worker(threads=1) as w:
        w.map(hold, [{"i": 1}], progress=False)  # the flow's graph and plan, built once
        gc.collect()
        before = len(gc.get_objects())
        mapping = threading.Thread(target=lambda: out.append(w.map(hold, many, progress=False)))
        mapping.start()
        deadline = time.monotonic() + 10
        while sum(w.store.status_counts().values()) < n + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the last job recorded is also handed to the map
        gc.collect()
        per_job = (len(gc.get_objects()) - before) / n
        gate.set()
        mapping.join(10)
    assert out == [list(range(n))]
    assert per_job < 4.5, f"{per_job:.1f} GC-tracked objects per job waiting to start"  # 11 when all were made at once


def test_ctrl_c_during_map_cancels_the_jobs_not_started() -> None:
    """Ctrl-C while a map waits: running jobs finish, the others never start and are recorded cancelled."""
    ran: list[int] = []

    @node
    def slow(i: int) -> int:
        ran.append(i)
        time.sleep(0.02)
        return i

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with Worker(threads=2) as w:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(KeyboardInterrupt):
                w.map(slow, [{"i": i} for i in range(300)], progress=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    counts = w.store.status_counts()
    assert 0 < len(ran) < 300
    assert set(counts) == {"completed", "cancelled"} and sum(counts.values()) == 300  # none left running
    assert counts["cancelled"] >= 300 - len(ran)  # a job interrupted while its node ran ends cancelled too


def test_async_nodes_run_concurrently_on_the_event_loop(worker) -> None:
    @node
    def fan() -> list[int]:
        return list(range(20))

    @node
    async def nap(i: int) -> int:
        await asyncio.sleep(0.2)
        return i

    started = time.perf_counter()
    assert fan.map(nap).run(worker=worker) == list(range(20))
    assert time.perf_counter() - started < 2.0  # 20 x 0.2 s in sequence would be 4 s


def test_sync_and_async_nodes_mix_in_one_flow(worker) -> None:
    @node
    async def ahead(x: int) -> int:
        await asyncio.sleep(0)
        return x * 10

    assert inc.then(ahead).then(inc).run({"x": 1}, worker=worker) == 21


def test_arun_awaits_without_blocking() -> None:
    async def main() -> tuple[int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        out = await slow_inc.arun({"x": 41}, worker=w)
        t.cancel()
        return out, ticks

    @node
    def slow_inc(x: int) -> int:
        time.sleep(0.2)
        return x + 1

    with Worker(threads=2) as w:
        out, ticks = asyncio.run(main())
    assert out == 42
    assert ticks >= 5  # the loop kept running while the job ran


def test_retries_with_backoff_then_success(worker) -> None:
    attempts: list[ExecutionContext] = []

    @node(retries=3, retry_delay=0.01, backoff=2.0, retry_on=(OSError,))
    def flaky(execution) -> str:
        attempts.append(execution)
        if len(attempts) < 3:
            raise OSError("temporary")
        return "ok"

    assert flaky.run(worker=worker) == "ok"
    assert [a.attempt for a in attempts] == [1, 2, 3]


def test_retry_only_on_listed_exceptions(worker) -> None:
    calls = []

    @node(retries=3, retry_on=(OSError,))
    def wrong() -> None:
        calls.append(1)
        raise ValueError("not retryable")

    with pytest.raises(NodeError) as info:
        wrong.run(worker=worker)
    assert len(calls) == 1
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.node == "wrong" and info.value.job_id


def test_last_error_raised_after_retries_exhausted(worker) -> None:
    @node(retries=2)
    def always() -> None:
        raise OSError("down")

    with pytest.raises(NodeError, match="attempt 3.*OSError: down"):
        always.run(worker=worker)


def test_sync_timeout_abandons_attempt(worker) -> None:
    @node(timeout=0.05)
    def stuck(job_state) -> None:
        job_state.set("written", True)
        time.sleep(0.5)

    job = worker.submit(stuck)
    with pytest.raises(NodeTimeoutError, match="timeout=0.05s"):
        job.result(5)
    assert job.state == {}  # the abandoned attempt's writes are discarded


def test_async_timeout(worker) -> None:
    @node(timeout=0.05)
    async def astuck() -> None:
        await asyncio.sleep(2)

    with pytest.raises(NodeTimeoutError):
        astuck.run(worker=worker)


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


def test_missing_input_fails_before_any_node_runs(worker) -> None:
    ran = []

    @node
    def load(path: str) -> str:
        ran.append(path)
        return path

    @node
    def clean(load: str, sep: str) -> str:  # a misspelt node name ('laod') is refused when built: see test_flow
        return load

    with pytest.raises(MissingInputError) as info:
        worker.submit(Flow([load, clean]), {"path": "x", "step": ","})
    assert ran == []
    assert str(info.value) == (
        "Job of flow 'load' is missing required input 'sep' (needed by node 'clean'); "
        "did you mean the input 'step'. Pass it in the job's inputs, e.g. flow.run({'sep': ...})."
    )


def test_log_records_carry_job_id_and_node(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="aetherflow.worker"), Worker(threads=1) as w:
        job = w.submit(inc, {"x": 1})
        job.result()
    node_records = [r for r in caplog.records if getattr(r, "node", None) == "inc"]
    assert {r.getMessage().split(" in job")[0] for r in node_records} == {"Node 'inc' started", "Node 'inc' completed"}
    assert all(r.job_id == job.id for r in node_records)


def test_failed_node_error_carries_node_and_job(worker) -> None:
    @node
    def boom() -> None:
        raise RuntimeError("kaput")

    job = worker.submit(boom)
    with pytest.raises(NodeError) as info:
        job.result()
    assert info.value.node == "boom" and info.value.job_id == job.id
    assert job.status == "failed"


def test_close_waits_for_running_jobs() -> None:
    w = Worker(threads=2)

    @node
    def slowish() -> str:
        time.sleep(0.2)
        return "done"

    job = w.submit(slowish)
    w.close()
    assert job.done() and job.result() == "done"


def test_closed_worker_refuses_new_jobs() -> None:
    w = Worker(threads=1)
    w.close()
    w.close()  # idempotent
    with pytest.raises(AetherFlowError, match="closed; create a new Worker"):
        w.submit(inc, {"x": 1})
    with pytest.raises(AetherFlowError, match="closed"):
        w.run(inc, {"x": 1})
    assert w.store.jobs() == [], "a refused job must not be recorded as running"


def test_flow_run_without_worker_uses_default_worker() -> None:
    assert inc.then(inc).run({"x": 0}) == 2


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
    from aetherflow import AetherFlowError

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


CTRL_C = """
import sys, time
from aetherflow import Worker, node

@node
def slow(i: int) -> int:
    print(f"STARTED {i}", flush=True)
    time.sleep(1.5)
    return i

with Worker(threads=2, store=sys.argv[1]) as w:
    jobs = [w.submit(slow.named("interrupted"), {"i": i}) for i in range(10)]
    print("SUBMITTED", flush=True)
    print([job.result() for job in jobs])
"""


def _interrupted(tmp_path: Path, signals: int) -> tuple[float, subprocess.Popen[str]]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    seen = ""
    while "SUBMITTED" not in seen or seen.count("STARTED") < 2:  # both threads busy, 8 jobs queued
        line = proc.stdout.readline()
        assert line, "the script ended early"
        seen += line
    sent = time.perf_counter()
    for _ in range(signals):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    proc.communicate(timeout=30)
    return time.perf_counter() - sent, proc


def test_first_ctrl_c_stops_starting_nodes_and_cancels_unfinished_jobs(tmp_path: Path) -> None:
    from aetherflow import open_store

    took, proc = _interrupted(tmp_path, signals=1)
    assert proc.returncode != 0
    assert took < 5  # the two running nodes return (1.5 s); the 8 queued jobs never start (12 s)
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        statuses = [j.status for j in store.jobs(limit=100)]
    assert len(statuses) == 10 and "running" not in statuses
    assert statuses.count("cancelled") >= 8


def test_second_ctrl_c_exits_at_once_and_recover_takes_what_it_left(tmp_path: Path) -> None:
    from aetherflow import Worker, node

    took, proc = _interrupted(tmp_path, signals=2)
    assert proc.returncode != 0 and took < 1.4  # before the running nodes could return
    ran = []

    @node
    def slow(i: int) -> int:
        ran.append(i)
        return i

    with Worker(threads=2, store=f"sqlite:///{tmp_path / 'c.db'}", flows=[slow.named("interrupted")]) as w:
        jobs = w.recover()
        assert jobs and sorted(j.result(10) for j in jobs) == sorted(ran)  # what the dead process left, taken over
        statuses = [j.status for j in w.store.jobs(limit=100)]
    assert "running" not in statuses


def test_an_input_the_store_cannot_hold_is_a_usage_error_in_place(tmp_path: Path) -> None:
    from aetherflow import UsageError

    class Point:  # a plain class: not JSON
        pass

    @node
    def f(x: object) -> str:
        return "ok"

    with Worker(threads=2, store=f"sqlite:///{tmp_path / 's.db'}") as w:
        out = w.map(f, [{"x": 1}, {"x": Point()}, {"x": 3}], return_exceptions=True, progress=False)
        assert out[0] == "ok" and out[2] == "ok"
        assert isinstance(out[1], UsageError) and "input 'x'" in str(out[1])
        with pytest.raises(UsageError, match="JSON-able"):
            w.submit(f, {"x": Point()})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_never_repeats_its_parents_job_ids() -> None:
    """Job ids are drawn in batches: a child forked mid-batch must not hand out the ids its parent will."""
    from aetherflow.worker import new_job_id

    new_job_id()  # the parent now holds ids it has not handed out yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, " ".join(new_job_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 4096).decode().split())
    os.close(read)
    parent = {new_job_id() for _ in range(5)}
    assert len(child) == 5 and not child & parent
