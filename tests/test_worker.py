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
    Flow,
    JobStatus,
    MissingInputError,
    Worker,
    node,
)
from shapes import inc


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


def test_second_ctrl_c_exits_at_once_and_recover_runs_nothing_the_first_cancelled(tmp_path: Path) -> None:
    """DESIGN §6: the first Ctrl-C marks unfinished jobs cancelled in the store; cancelled is final."""
    from aetherflow import Worker, node

    took, proc = _interrupted(tmp_path, signals=2)
    assert proc.returncode != 0 and took < 1.4  # before the running nodes could return
    ran = []

    @node
    def slow(i: int) -> int:
        ran.append(i)
        return i

    with Worker(threads=2, store=f"sqlite:///{tmp_path / 'c.db'}", flows=[slow.named("interrupted")]) as w:
        for job in w.recover():
            job.result(10)
        statuses = [j.status for j in w.store.jobs(limit=100)]
    assert statuses.count("cancelled") == 10, statuses
    assert ran == [], f"recover ran jobs the first Ctrl-C had cancelled: {ran}"


def test_close_waits_for_a_running_job_whose_node_runs_a_nested_job() -> None:
    """DESIGN §5: close() waits for running jobs; a node that runs a nested job on its worker is part of one."""
    started = threading.Event()
    box: dict[str, Worker] = {}

    @node
    def inner(i: int) -> int:
        return i + 1

    @node
    def outer(i: int) -> int:
        started.set()
        time.sleep(0.2)  # close() is called meanwhile
        return box["w"].run(inner, {"i": i})

    w = box["w"] = Worker(threads=2)
    job = w.submit(outer, {"i": 1})
    assert started.wait(5)
    closing = threading.Thread(target=w.close)
    closing.start()
    closing.join(10)
    assert not closing.is_alive()
    assert job.result(timeout=5) == 2
    with pytest.raises(AetherFlowError, match="is closed"):
        w.submit(inner, {"i": 1})  # once closed, a job from outside is still refused


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
