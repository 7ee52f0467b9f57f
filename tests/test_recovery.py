"""Fault tests: killed processes, a second process on one SQLite file, dropped connections."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from aetherflow import AetherFlowError, Worker, node, open_store
from resources import crashing
from shapes import RUN_INTERRUPTED_THEN_CLOSE, SLOW_TEARDOWN_CONTEXT, signalled_while_tearing_down
from storecase import postgres_url

RESOURCES = Path(__file__).parent / "resources"


def _crash(url: str, marker: Path, jobs: int = 1) -> int:
    env = {**os.environ, "AETHERFLOW_CRASH": "1", "AETHERFLOW_MARKER": str(marker), "PYTHONPATH": str(RESOURCES.parent)}
    proc = subprocess.run(
        [sys.executable, str(RESOURCES / "crashing.py"), url, str(jobs)], env=env, timeout=60, capture_output=True
    )
    return proc.returncode


@pytest.mark.parametrize("trial", range(3))
def test_killed_process_job_is_recovered_without_rerunning_completed_nodes(
    tmp_path: Path, trial: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    marker = tmp_path / "marker"
    assert _crash(url, marker) == 17
    assert marker.read_text().split() == ["a", "b"]
    monkeypatch.setattr(crashing, "MARKER", str(marker))
    with Worker(threads=2, store=url, flows=[crashing.FLOW]) as w:
        [job] = w.recover()
        out = job.result(30)
    assert out == {"result": 4, "a": 0, "trail": ["b"]}
    ran = Counter(marker.read_text().split())
    assert ran == {"a": 1, "b": 1, "c": 1, "d": 1}
    store = open_store(url)
    assert store.job(job.id).status == "completed"
    store.close()


def test_recover_takes_every_orphaned_job_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    marker = tmp_path / "marker"
    _crash(url, marker, jobs=3)
    monkeypatch.setattr(crashing, "MARKER", str(marker))
    started = time.perf_counter()
    with Worker(threads=2, store=url, flows=[crashing.FLOW]) as w:
        jobs = w.recover()
        assert len(jobs) >= 1
        for job in jobs:
            assert job.result(30)["result"] >= 4
        assert w.recover() == []  # nothing left to take over
    assert time.perf_counter() - started < 20  # at once, not after a lease timeout


def test_recover_leaves_jobs_of_live_workers_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    gate = threading.Event()

    @node
    def waits() -> int:
        gate.wait(10)
        return 1

    with Worker(threads=2, store=url) as busy:
        job = busy.submit(waits)
        time.sleep(0.05)
        with Worker(threads=1, store=url) as other:
            assert other.recover(flows=[waits]) == []
        gate.set()
        assert job.result(10) == 1


def test_two_processes_write_one_sqlite_file_without_lock_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    open_store(url).close()  # create the schema first
    proc = subprocess.Popen(
        [sys.executable, str(RESOURCES / "writer_process.py"), url, "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    @node
    def here(i: int, job_state) -> int:
        job_state.set("i", i)
        return i

    with Worker(threads=8, store=url) as w:
        jobs = [w.submit(here.named("first-process"), {"i": i}) for i in range(300)]
        assert [j.result(60) for j in jobs] == list(range(300))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "locked" not in err
    store = open_store(url)
    assert len(store.jobs(flow="first-process", limit=1000)) == 300
    assert len(store.jobs(flow="second-process", limit=1000)) == 300
    store.close()


def test_postgres_survives_a_dropped_connection_mid_run() -> None:
    url = postgres_url()
    import psycopg

    @node
    def step(i: int, job_state) -> int:
        job_state.set("i", i)
        time.sleep(0.002)
        return i

    def kill_backends() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

    with Worker(threads=4, store=url) as w:
        jobs = [w.submit(step.named("pg-drop"), {"i": i}) for i in range(100)]
        time.sleep(0.05)
        kill_backends()
        results = [j.result(60) for j in jobs]
        kill_backends()
        more = w.submit(step.named("pg-drop"), {"i": 100}).result(60)
    assert results == list(range(100)) and more == 100
    store = open_store(url)
    assert len(store.jobs(flow="pg-drop", limit=1000)) == 101
    assert all(j.status == "completed" for j in store.jobs(flow="pg-drop", limit=1000))
    store.close()


SLOW_JOB = """
import sys, time
from aetherflow import Worker, node

@node
def first(x: int, job_state) -> int:
    job_state.set("first", x)
    return x + 1

@node
def slow(first: int) -> int:
    print("SLOW STARTED", flush=True)
    time.sleep(60)
    return first

flow = first.then(slow).named("killed")
with Worker(threads=1, store=sys.argv[1]) as w:
    w.submit(flow, {"x": 1}).result()
"""


def test_sigkilled_process_mid_node_is_recovered(tmp_path: Path) -> None:
    import signal

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with subprocess.Popen([sys.executable, "-c", SLOW_JOB, url], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "SLOW STARTED"  # first completed, slow is running
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    ran = []

    @node
    def first(x: int, job_state) -> int:
        ran.append("first")
        return x + 1

    @node
    def slow(first: int) -> int:
        ran.append("slow")
        return first * 10

    with Worker(threads=1, store=url, flows=[first.then(slow).named("killed")]) as w:
        [job] = w.recover()
        assert job.result(30) == 20
        assert job.state == {"first": 1}  # restored from the killed process's commit
    assert ran == ["slow"]


def test_recover_takes_jobs_whose_heartbeat_expired(tmp_path: Path) -> None:
    """A worker on another host that stopped beating: its job is taken after the lease."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    @node
    def lonely(x: int) -> int:
        return x * 2

    store = open_store(url)
    store.create_job("a" * 32, "lonely", {"x": 21}, "ghost-worker", time.time() - 120, process=(12345, "another-host"))
    store.set_job_status("a" * 32, __import__("aetherflow").JobStatus.RUNNING, time.time() - 120)
    store.heartbeat("ghost-worker", 12345, "another-host", time.time() - 120)
    store.flush()
    with Worker(threads=1, store=store, flows=[lonely], lease=300) as w:
        assert w.recover() == []  # heartbeat 2 minutes old, lease 5 minutes: still alive
    with Worker(threads=1, store=store, flows=[lonely], lease=60) as w:
        [job] = w.recover()
        assert job.result(10) == 42
    assert store.job("a" * 32).status == "completed"
    store.close()


# -- exactly once: each defect of issue #12, as a user would meet it ------------------------


def _map_suspend_flow(calls: list[str]):
    from aetherflow import Suspend

    @node
    def items(n: int) -> list[int]:
        calls.append("items")
        return list(range(n))

    @node
    def square(x: int) -> int:
        calls.append("square")
        return x * x

    @node
    def total(square: list[int]) -> int:
        calls.append("total")
        return sum(square)

    @node
    def ask(total: int, ok: bool = False) -> int:
        calls.append("ask")
        if not ok:
            raise Suspend("ok?")
        return total

    return items.map(square).then(total).then(ask).named("map-suspend")


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_resume_after_a_map_runs_only_the_suspended_node(tmp_path: Path, url: str) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if url == "sqlite" else url
    calls: list[str] = []
    flow = _map_suspend_flow(calls)
    with Worker(threads=2, store=url, flows=[flow]) as w:
        job = w.submit(flow, {"n": 3})
        with pytest.raises(Exception, match="suspended"):
            job.result(10)
        assert sorted(calls) == ["ask", "items", "square", "square", "square", "total"]
        calls.clear()
        assert w.resume(job.id, inputs={"ok": True}).result(10) == 5
    assert calls == ["ask"]


def test_resume_of_a_map_over_nothing_does_not_rerun_its_successors(tmp_path: Path) -> None:
    calls: list[str] = []
    flow = _map_suspend_flow(calls)
    with Worker(threads=2, store=f"sqlite:///{tmp_path / 'm.db'}", flows=[flow]) as w:
        job = w.submit(flow, {"n": 0})
        with pytest.raises(Exception, match="suspended"):
            job.result(10)
        calls.clear()
        assert w.resume(job.id, inputs={"ok": True}).result(10) == 0
    assert calls == ["ask"]


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_resume_of_a_completed_job_returns_its_result_and_changes_nothing(tmp_path: Path, url: str) -> None:
    url = f"sqlite:///{tmp_path / 'done.db'}" if url == "sqlite" else url
    calls: list[str] = []

    @node
    def once(x: int) -> int:
        calls.append("once")
        return x + 1

    flow = once.then(once).named("done")
    with Worker(threads=2, store=url, flows=[flow]) as w:
        job = w.submit(flow, {"x": 1})
        assert job.result(10) == 3
        before = (w.store.job(job.id), w.store.node_runs(job.id), w.store.events(job.id))
        again = w.resume(job.id)
        assert again.result(5) == 3
        assert again.status == "completed"
        assert (w.store.job(job.id), w.store.node_runs(job.id), w.store.events(job.id)) == before
        assert w.recover() == []
    assert calls == ["once", "once"]


STATE_CRASH = """
import os, sys
from aetherflow import AetherFlowError, Worker, node, open_store

def crash_in(name):
    if os.environ.get("CRASH_IN") == name:
        os._exit(17)

@node
def first(job_state) -> int:
    job_state.set("base", 42)
    return 1

@node
def second(first: int, job_state) -> int:
    crash_in("second")
    job_state.set("second", 2)
    return 2

@node
def third(second: int, job_state) -> dict:
    crash_in("third")
    return job_state.snapshot()

flow = first.then(second).then(third).named("state-crash")
store = open_store(sys.argv[1], snapshot_every=1)  # a snapshot at every commit, as a long job makes
with Worker(threads=1, store=store, flows=[flow]) as w:
    if sys.argv[2] == "submit":
        w.submit(flow).result()
    else:
        print([j.result(30) for j in w.recover()])
"""


def test_committed_state_survives_a_second_recovery(tmp_path: Path) -> None:
    """Process 1 commits and crashes; process 2 recovers, commits more, crashes; process 3 sees both commits."""
    url = f"sqlite:///{tmp_path / 'state.db'}"

    def proc(mode: str, crash_in: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CRASH_IN": crash_in}
        return subprocess.run(
            [sys.executable, "-c", STATE_CRASH, url, mode], env=env, timeout=60, capture_output=True, text=True
        )

    assert proc("submit", crash_in="second").returncode == 17
    assert proc("recover", crash_in="third").returncode == 17
    last = proc("recover", crash_in="")
    assert last.returncode == 0, last.stderr
    assert last.stdout.strip() == str([{"base": 42, "second": 2}])
    store = open_store(url)
    [job] = store.jobs(flow="state-crash")
    assert job.status == "completed"
    store.close()


LIVE_OWNER = """
import os, sys, time
from aetherflow import Worker, node

@node
def slow(x: int) -> int:
    if x == 0:  # one line from one thread: two threads' prints could interleave
        print("STARTED", flush=True)
    for _ in range(3000):  # until the test opens the gate
        if os.path.exists(sys.argv[2]):
            break
        time.sleep(0.01)
    return x

with Worker(threads=2, store=sys.argv[1], lease=30) as w:
    jobs = [w.submit(slow.named("owned"), {"x": i}) for i in range(2)]
    print([j.result() for j in jobs], flush=True)
"""


def test_a_live_worker_keeps_its_jobs_whatever_lease_a_claimer_passes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'owned.db'}"
    ran = []

    @node
    def slow(x: int) -> int:
        ran.append(x)
        return x

    gate = tmp_path / "gate"
    with subprocess.Popen(
        [sys.executable, "-c", LIVE_OWNER, url, str(gate)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "STARTED"
        time.sleep(0.3)  # older than the claimer's lease below, well within the owner's own
        with Worker(threads=1, store=url, flows=[slow.named("owned")], lease=0.1) as claimer:
            assert claimer.recover() == []
            with pytest.raises(AetherFlowError, match="which is alive"):
                claimer.resume(claimer.store.jobs(flow="owned")[0].id)
        gate.touch()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.strip().splitlines()[-1] == "[0, 1]"
    assert ran == []


def test_two_workers_resuming_one_suspended_job_at_once_run_it_once(tmp_path: Path) -> None:
    from aetherflow import Suspend

    url = f"sqlite:///{tmp_path / 'race.db'}"
    runs: list[str] = []
    gate = threading.Barrier(2)

    @node
    def gate_node(ok: bool = False) -> str:
        runs.append(threading.current_thread().name)
        if not ok:
            raise Suspend("wait")
        return "done"

    flow = gate_node.named("race")
    with Worker(threads=1, store=url, flows=[flow], name="first") as w:
        job_id = w.submit(flow).id
        w.store.flush()
    runs.clear()
    outcomes: list[object] = []

    def resume(name: str) -> None:
        with Worker(threads=1, store=url, flows=[flow], name=name) as w:
            gate.wait(5)
            try:
                outcomes.append(w.resume(job_id, inputs={"ok": True}).result(10))
            except AetherFlowError as exc:
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=resume, args=(f"r{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # The loser is refused, or, when the winner already finished, gets the recorded result.
    assert "done" in outcomes and set(outcomes) <= {"done", "JobClaimedError"} and len(outcomes) == 2
    assert len(runs) == 1


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_an_approval_gate_in_a_loop_asks_again_on_every_iteration(tmp_path: Path, url: str) -> None:
    """`answer` holds the answer in the resumed run of the node that suspended only (LangGraph's interrupt)."""
    from aetherflow import JobSuspendedError, Suspend

    url = f"sqlite:///{tmp_path / 'loop.db'}" if url == "sqlite" else url
    seen: list[object] = []

    @node
    def propose(job_state) -> int:
        return job_state.apply("calls", lambda n: n + 1, default=0)

    @node
    def gate(propose: int, answer: str | None = None) -> int:
        seen.append(answer)
        if answer is None:
            raise Suspend(f"run tool call {propose}?")
        return propose

    @node
    def more(gate: int) -> bool:
        return gate < 3

    @node
    def done(gate: int) -> str:
        return f"approved {gate}"

    flow = propose.then(gate).then(more).branch_on({True: propose, False: done}).named("agent")
    with Worker(threads=2, store=url, flows=[flow]) as w:
        job = w.submit(flow)
        for call in (1, 2, 3):
            with pytest.raises(JobSuspendedError, match=f"tool call {call}"):
                job.result(10)
            job = w.resume(job.id, answer=f"yes {call}")
        assert job.result(10) == "approved 3"
        answered = [e.data for e in w.store.events(job.id, types=["job_answered"])]
    assert seen == [None, "yes 1", None, "yes 2", None, "yes 3"]
    assert answered == [{"node": "gate", "item": None, "answer": f"yes {n}"} for n in (1, 2, 3)]


def test_answer_to_a_secret_parameter_is_recorded_redacted(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from aetherflow import Suspend

    @node
    def unlock(answer: SecretStr | None = None) -> int:
        if answer is None:
            raise Suspend("pin?")
        return len(answer.get_secret_value())

    url = f"sqlite:///{tmp_path / 'secret.db'}"
    with Worker(threads=1, store=url, flows=[unlock]) as w:
        job = w.submit(unlock)
        with pytest.raises(AetherFlowError):
            job.result(10)
        assert w.resume(job.id, answer="4321-pin").result(10) == 8
    assert b"4321-pin" not in (tmp_path / "secret.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("secret.db-*")
    )


def test_answer_for_a_job_that_is_not_suspended_is_refused(tmp_path: Path) -> None:
    @node
    def plain() -> int:
        return 1

    with Worker(threads=1, store=f"sqlite:///{tmp_path / 'a.db'}", flows=[plain]) as w:
        job = w.submit(plain)
        job.result(10)
        w.store.set_job_status(job.id, __import__("aetherflow").JobStatus.FAILED, time.time())
        with pytest.raises(AetherFlowError, match="not suspended"):
            w.resume(job.id, answer="yes")


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_a_suspended_job_is_not_held_in_the_workers_memory(tmp_path: Path, url: str) -> None:
    import gc
    import weakref

    from aetherflow import Suspend

    url = f"sqlite:///{tmp_path / 'held.db'}" if url == "sqlite" else url

    @node
    def later(ok: bool = False) -> str:
        if not ok:
            raise Suspend("later")
        return "done"

    with Worker(threads=2, store=url, flows=[later]) as w:
        job = w.submit(later)
        with pytest.raises(AetherFlowError):
            job.result(10)
        job_id, handle = job.id, weakref.ref(job)
        del job
        gc.collect()
        assert handle() is None  # the worker keeps nothing of it: the store has it
        assert w.resume(job_id, inputs={"ok": True}).result(10) == "done"


def test_suspended_jobs_count_toward_the_memory_stores_bound() -> None:
    from aetherflow import Suspend
    from aetherflow.store.memory import MemoryStore

    @node
    def never(i: int) -> None:
        raise Suspend("never resumed")

    store = MemoryStore(max_jobs=10)
    with Worker(threads=2, store=store) as w:
        for job in [w.submit(never, {"i": i}) for i in range(30)]:
            with pytest.raises(AetherFlowError):
                job.result(10)
    assert len(store.jobs(limit=100)) == 10


def test_cancelling_a_suspended_job_records_it_cancelled(tmp_path: Path) -> None:
    from aetherflow import Suspend

    @node
    def held() -> None:
        raise Suspend("hold")

    with Worker(threads=1, store=f"sqlite:///{tmp_path / 'c.db'}") as w:
        job = w.submit(held)
        with pytest.raises(AetherFlowError):
            job.result(10)
        job.cancel()
        assert job.status == "cancelled"
        assert w.store.job(job.id).status == "cancelled"


SUBMITTER = """
import sys
from aetherflow import Worker, node

@node
def quick(i: int) -> int:
    return i

with Worker(threads=2, store=sys.argv[1]) as w, open(sys.argv[2], "a") as acks:
    print("READY", flush=True)
    for i in range(100_000):
        job = w.submit(quick.named("acked"), {"i": i})
        acks.write(job.id + "\\n")
        acks.flush()
"""


@pytest.mark.parametrize("trial", range(4))
def test_under_sync_a_job_submit_returned_is_in_the_store_after_kill_9(tmp_path: Path, trial: int) -> None:
    import random
    import signal

    url = f"sqlite:///{tmp_path / 'acked.db'}"
    acks = tmp_path / "acks"
    with subprocess.Popen([sys.executable, "-c", SUBMITTER, url, str(acks)], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        time.sleep(random.Random(trial).uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    acknowledged = acks.read_text().split()
    assert acknowledged
    with open_store(url) as store:
        recorded = {j.id for j in store.jobs(flow="acked", limit=1_000_000)}
    assert set(acknowledged) <= recorded


@pytest.mark.parametrize("url", ["memory://", "sqlite", "postgres"])
def test_values_mean_what_they_meant_after_a_resume(tmp_path: Path, url: str) -> None:
    from datetime import UTC, datetime

    from aetherflow import Suspend

    url = {"sqlite": f"sqlite:///{tmp_path / 'v.db'}", "postgres": "postgres"}.get(url, url)
    if url == "postgres":
        url = postgres_url()
    when = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    @node
    def make() -> tuple[set[int], datetime, dict[int, str], float]:
        return {1, 2}, when, {7: "seven"}, float("nan")

    @node
    def items() -> list[set[int]]:
        return [{1}, {2, 3}]

    @node
    def each(x) -> frozenset[int]:
        return frozenset(x)

    @node
    def gate(make, each, ok: bool = False) -> str:
        if not ok:
            raise Suspend("later")
        ids, at, names, nan = make
        assert type(ids) is set and type(at) is datetime and at == when and names == {7: "seven"} and nan != nan
        assert all(type(e) is frozenset for e in each) and each == [frozenset({1}), frozenset({2, 3})]
        return "typed"

    flow = make.then(items).map(each).then(gate).named("typed")
    with Worker(threads=2, store=url, flows=[flow]) as w:
        job = w.submit(flow)
        with pytest.raises(AetherFlowError):
            job.result(10)
        assert w.resume(job.id, inputs={"ok": True}).result(10) == "typed"


# -- found by an adversarial campaign after the first round of fixes -------------------------


@pytest.mark.parametrize("url", ["memory://", "sqlite", "postgres"])
def test_two_resumes_on_one_worker_run_the_suspended_node_once(tmp_path: Path, url: str) -> None:
    from aetherflow import Suspend

    url = postgres_url() if url == "postgres" else f"sqlite:///{tmp_path / 'r.db'}" if url == "sqlite" else url
    paid: list[str] = []

    @node
    def approve(execution, answer: bool | None = None) -> str:
        if answer is None:
            raise Suspend("pay?")
        paid.append(execution.job_id)
        time.sleep(0.02)
        return "paid"

    flow = approve.named("pay-once")
    with Worker(threads=4, store=url, flows=[flow]) as w:
        for _ in range(10):
            job = w.submit(flow)
            with pytest.raises(AetherFlowError):
                job.result(10)
            barrier = threading.Barrier(2)

            def click(job_id: str = job.id, barrier: threading.Barrier = barrier) -> None:
                barrier.wait(5)
                with contextlib.suppress(AetherFlowError):
                    w.resume(job_id, answer=True).result(10)

            threads = [threading.Thread(target=click) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert paid.count(job.id) == 1
            assert [r.status for r in w.store.node_runs(job.id)].count("completed") == 1


@pytest.mark.parametrize("url", ["sqlite", "postgres"])
def test_recover_on_a_live_worker_never_takes_its_own_jobs(tmp_path: Path, url: str) -> None:
    url = postgres_url() if url == "postgres" else f"sqlite:///{tmp_path / 'own.db'}"
    ran: Counter[str] = Counter()

    @node
    def charge(x: int, execution) -> int:
        ran[execution.job_id] += 1
        time.sleep(0.005)
        return x

    flow = charge.named("charge")
    stop = threading.Event()
    with Worker(threads=4, store=url, flows=[flow]) as w:

        def recoverer() -> None:
            while not stop.is_set():
                for job in w.recover():
                    job.result(30)

        t = threading.Thread(target=recoverer)
        t.start()
        jobs = [w.submit(flow, {"x": i}) for i in range(150)]
        for job in jobs:
            job.result(30)
        stop.set()
        t.join(30)
    assert max(ran.values()) == 1


def test_recover_skips_jobs_of_flows_it_does_not_know(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mixed.db'}"

    @node
    def billing(x: int) -> int:
        return x

    store = open_store(url)
    for job_id, flow in (("a" * 32, "mail"), ("b" * 32, "billing")):
        store.create_job(job_id, flow, {"x": 1}, "ghost", time.time() - 100, running=True, process=(1, "another-host"))
    store.heartbeat("ghost", 1, "another-host", time.time() - 100)
    store.close()
    with Worker(threads=1, store=url, flows=[billing]) as w:
        [job] = w.recover()
        assert job.result(10) == 1
        assert w.store.job("a" * 32).status == "running"  # left for a worker that knows 'mail'


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_a_cancelled_job_stays_cancelled(tmp_path: Path, url: str) -> None:
    from aetherflow import Suspend

    url = f"sqlite:///{tmp_path / 'c.db'}" if url == "sqlite" else url

    @node
    def approve(ok: bool = False) -> str:
        if not ok:
            raise Suspend("ok?")
        return "paid"

    with Worker(threads=1, store=url, flows=[approve]) as w:
        job = w.submit(approve)
        with pytest.raises(AetherFlowError):
            job.result(10)
        job.cancel()
        with pytest.raises(AetherFlowError, match="cancelled"):
            w.resume(job.id, inputs={"ok": True})
        assert w.store.job(job.id).status == "cancelled"


SECRET_CRASH = """
import sys, time
from pydantic import SecretStr
from aetherflow import Worker, node

@node
def login(password: SecretStr) -> str:
    if sys.argv[2] == "submit":
        print("STARTED", flush=True)
        time.sleep(60)
    return "logged in with " + password.get_secret_value()

with Worker(threads=1, store=sys.argv[1], flows=[login]) as w:
    if sys.argv[2] == "submit":
        w.submit(login, {"password": "hunter2"}).result()
    else:
        for job in w.recover():
            try:
                print(job.result(10))
            except Exception as exc:
                print(type(exc).__name__, exc)
"""


def test_recover_never_runs_a_job_with_a_redacted_secret_input(tmp_path: Path) -> None:
    import signal

    url = f"sqlite:///{tmp_path / 's.db'}"
    with subprocess.Popen(
        [sys.executable, "-c", SECRET_CRASH, url, "submit"], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "STARTED"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    out = subprocess.run(
        [sys.executable, "-c", SECRET_CRASH, url, "recover"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "**********" not in out and "logged in" not in out
    with open_store(url) as store:
        [job] = store.jobs()
        assert job.status == "failed" and "password" in (job.error or "") and "inputs=" in (job.error or "")


def test_an_answer_that_does_not_fit_the_parameter_is_refused_and_the_job_stays_suspended(tmp_path: Path) -> None:
    from aetherflow import Suspend, UsageError

    @node
    def gate(answer: bool | None = None) -> str:
        if answer is None:
            raise Suspend("yes or no?")
        return "yes" if answer else "no"

    with Worker(threads=1, store=f"sqlite:///{tmp_path / 'a.db'}", flows=[gate]) as w:
        job = w.submit(gate)
        with pytest.raises(AetherFlowError):
            job.result(10)
        with pytest.raises(UsageError, match="answer"):
            w.resume(job.id, answer={"not": "a bool"})
        assert w.store.job(job.id).status == "suspended"
        assert w.resume(job.id, answer=False).result(10) == "no"
        with pytest.raises(AetherFlowError, match="not suspended"):
            w.resume(job.id, answer=True)  # completed: an answer has nothing to answer


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
def test_one_answer_reaches_one_suspended_item_of_a_map(tmp_path: Path, url: str) -> None:
    from aetherflow import JobSuspendedError, Suspend

    url = f"sqlite:///{tmp_path / 'm.db'}" if url == "sqlite" else url

    @node
    def orders(n: int) -> list[int]:
        return list(range(n))

    @node
    def approve(o: int, answer: str | None = None) -> str:
        if answer is None:
            raise Suspend(f"order {o}?")
        return f"order {o}: {answer}"

    flow = orders.map(approve).named("orders")
    with Worker(threads=1, store=url, flows=[flow]) as w:
        job = w.submit(flow, {"n": 3})
        answers = 0
        while True:
            try:
                result = job.result(10)
                break
            except JobSuspendedError:
                answers += 1
                assert answers <= 3
                job = w.resume(job.id, answer=f"yes #{answers}")
    assert answers == 3
    assert sorted(r.split(": ")[1] for r in result) == ["yes #1", "yes #2", "yes #3"]  # each answer went to one order


ANSWERED_CRASH = """
import sys, time
from aetherflow import Suspend, Worker, node

@node
def approve(answer: bool | None = None) -> str:
    if answer is None:
        raise Suspend("pay?")
    if sys.argv[2] == "answer":
        print("ANSWERED", flush=True)
        time.sleep(60)
    return f"paid={answer}"

with Worker(threads=1, store=sys.argv[1], flows=[approve]) as w:
    if sys.argv[2] == "submit":
        try:
            w.submit(approve).result()
        except Exception:
            pass
    elif sys.argv[2] == "answer":
        w.resume(w.store.jobs()[0].id, answer=True).result()
    else:
        print([job.result(10) for job in w.recover()])
"""


def test_an_answer_survives_a_crash_of_the_run_it_answered(tmp_path: Path) -> None:
    import signal

    url = f"sqlite:///{tmp_path / 'ans.db'}"
    subprocess.run([sys.executable, "-c", ANSWERED_CRASH, url, "submit"], timeout=60, check=True)
    with subprocess.Popen(
        [sys.executable, "-c", ANSWERED_CRASH, url, "answer"], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ANSWERED"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    out = subprocess.run(
        [sys.executable, "-c", ANSWERED_CRASH, url, "recover"], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "['paid=True']", out.stderr


def test_a_resume_prepared_on_a_stale_view_of_the_job_is_refused(tmp_path: Path) -> None:
    """ABA: B reads a suspended job, A resumes it and it suspends again; B's claim must not match."""
    from aetherflow import JobSuspendedError, Suspend

    url = f"sqlite:///{tmp_path / 'aba.db'}"
    laps: list[int] = []

    @node
    def gate(job_state, answer: bool | None = None) -> int:
        if answer is None:
            raise Suspend("approve this lap")
        laps.append(job_state.apply("lap", lambda n: n + 1, default=0))
        return laps[-1]

    @node
    def again(gate: int) -> bool:
        return gate < 3

    @node
    def end(again: bool, gate: int) -> int:
        return gate

    flow = gate.then(again).branch_on({True: gate, False: end}).named("aba")
    a = Worker(name="replica-a", store=url, flows=[flow])
    b = Worker(name="replica-b", store=url, flows=[flow])
    try:
        job = a.submit(flow)
        with pytest.raises(JobSuspendedError):
            job.result(10)
        a_done = threading.Event()
        real_claim = b.store.claim

        def claim_after_a(*args: object, **kwargs: object) -> bool:
            a_done.wait(10)  # widens B's window between reading the job and claiming it
            return real_claim(*args, **kwargs)  # type: ignore[arg-type]

        b.store.claim = claim_after_a  # type: ignore[method-assign]
        outcome: list[object] = []
        t = threading.Thread(target=lambda: outcome.append(_resume_outcome(b, job.id)))
        t.start()
        time.sleep(0.3)
        with pytest.raises(JobSuspendedError):
            a.resume(job.id, answer=True).result(10)
        a_done.set()
        t.join(30)
        assert outcome == ["JobClaimedError"]
        assert laps == [1]
    finally:
        a.close()
        b.close()


def _resume_outcome(worker: Worker, job_id: str) -> str:
    from aetherflow import JobSuspendedError

    try:
        worker.resume(job_id, answer=True).result(10)
    except JobSuspendedError:
        return "ran"
    except AetherFlowError as exc:
        return type(exc).__name__
    return "ran"


def test_a_job_left_by_an_earlier_process_with_this_pid_is_recovered(tmp_path: Path) -> None:
    """A restarted container's worker is pid 1 again: its predecessor's jobs are not its own."""
    import socket

    @node
    def doubled(x: int) -> int:
        return 2 * x

    store = open_store(f"sqlite:///{tmp_path / 'pid.db'}")
    store.create_job(
        "c" * 32,
        "doubled",
        {"x": 21},
        "worker-old",
        time.time(),
        running=True,
        process=(os.getpid(), socket.gethostname(), 1.0),
    )
    with Worker(threads=1, store=store, flows=[doubled]) as w:
        [job] = w.recover()
        assert job.result(10) == 42
    store.close()


def test_an_answer_to_a_mapped_item_is_never_lost_to_a_sibling_suspending_first(tmp_path: Path) -> None:
    from aetherflow import JobSuspendedError, Suspend

    seen: list[tuple[int, object]] = []

    @node
    def split(n: int) -> list[int]:
        return list(range(n))

    @node
    def item(split: int, answer: str | None = None) -> str:
        seen.append((split, answer))
        if answer is None:
            raise Suspend(f"item {split}?")
        return f"{split}:{answer}"

    flow = split.map(item).named("map-answer")
    for trial in range(10):
        with Worker(threads=4, store=f"sqlite:///{tmp_path / f'{trial}.db'}", flows=[flow]) as w:
            job = w.submit(flow, {"n": 4})
            with pytest.raises(JobSuspendedError):
                job.result(10)
            target = w.store.progress(job.id).suspended_item
            seen.clear()
            with contextlib.suppress(JobSuspendedError):
                w.resume(job.id, answer="YES").result(10)
            assert (target, "YES") in seen


def test_recover_from_two_threads_of_one_worker_takes_each_job_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two.db'}"
    ran: Counter[int] = Counter()

    @node
    def once(x: int) -> int:
        ran[x] += 1
        return x

    store = open_store(url)
    for i in range(10):
        store.create_job(f"{i:032x}", "once", {"x": i}, "ghost", time.time(), running=True, process=(1, "another-host"))
    store.close()
    with Worker(threads=4, store=url, flows=[once]) as w:
        found: list[list[object]] = []
        threads = [threading.Thread(target=lambda: found.append(w.recover())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        jobs = [j for batch in found for j in batch]
        assert sorted(j.result(10) for j in jobs) == list(range(10))  # type: ignore[attr-defined]
    assert set(ran.values()) == {1}


def test_an_answer_for_a_node_without_an_answer_parameter_is_refused(tmp_path: Path) -> None:
    from aetherflow import Suspend, UsageError

    @node
    def gate(ok: bool = False) -> str:
        if not ok:
            raise Suspend("ok?")
        return "ok"

    with Worker(threads=1, store=f"sqlite:///{tmp_path / 'g.db'}", flows=[gate]) as w:
        job = w.submit(gate)
        with pytest.raises(AetherFlowError):
            job.result(10)
        with pytest.raises(UsageError, match="no `answer` parameter"):
            w.resume(job.id, answer=True)
        assert w.store.job(job.id).status == "suspended"


def test_a_worker_whose_job_was_taken_over_stops_it_and_records_nothing_more(tmp_path: Path) -> None:
    """A worker paused past its lease (a VM freeze, a network split) finds its job claimed elsewhere."""
    import sqlite3

    from aetherflow import JobClaimedError

    db = tmp_path / "fence.db"
    gate = threading.Event()
    ran: list[str] = []

    @node
    def first(x: int) -> int:
        ran.append("first")
        gate.wait(10)
        return x

    @node
    def second(first: int) -> int:
        ran.append("second")
        return first

    with Worker(threads=1, store=f"sqlite:///{db}", lease=0.3) as w:
        job = w.submit(first.then(second).named("fenced"), {"x": 1})
        time.sleep(0.1)
        with sqlite3.connect(db) as conn:  # what another process's claim writes
            conn.execute(
                "UPDATE jobs SET pid = 1, host = 'elsewhere', claim = 'theirs', worker = 'other' WHERE id = ?",
                (job.id,),
            )
        time.sleep(0.4)  # a heartbeat (every lease/3) notices
        gate.set()
        with pytest.raises(JobClaimedError, match="taken over"):
            job.result(10)
        assert ran == ["first"]
        runs = w.store.node_runs(job.id)
        record = w.store.job(job.id)
    assert runs == [] and record.status == "running" and record.worker == "other"


@pytest.mark.parametrize("url", ["sqlite", "postgres"])
def test_only_the_owning_process_changes_a_jobs_status(tmp_path: Path, url: str) -> None:
    """A worker that wakes from a long pause must not mark failed a job another process now runs."""
    from aetherflow import JobStatus

    url = postgres_url() if url == "postgres" else f"sqlite:///{tmp_path / 'own.db'}"
    store = open_store(url)
    store.create_job("d" * 32, "f", {}, "sleeper", time.time(), running=True)  # created by this process
    token = store.progress("d" * 32).token
    store.claim("d" * 32, "other", token, JobStatus.RUNNING)  # ... and claimed by this process again: still its own
    store.set_job_status("d" * 32, JobStatus.SUSPENDED, time.time(), error="mine to write")
    assert store.job("d" * 32).status == "suspended"
    store.create_job("e" * 32, "f", {}, "other", time.time(), running=True, process=(1, "elsewhere", 5.0))
    store.set_job_status("e" * 32, JobStatus.FAILED, time.time(), error="a stale owner's failure")
    record = store.job("e" * 32)
    assert record.status == "running" and record.error is None
    assert [e.type for e in store.events("e" * 32)] == ["job_created", "job_running"]
    store.close()


FORKED = """
import multiprocessing as mp, os, sqlite3, sys
from aetherflow import Worker, node, open_store

@node
def one() -> int:
    return 1

def child(url):
    with Worker(threads=1, store=url) as w:
        job = w.submit(one)
        job.result(10)
        print(job.id, os.getpid(), flush=True)

if __name__ == "__main__":
    open_store(sys.argv[1]).close()  # the parent has used a SQL store before it forks
    p = mp.get_context("fork").Process(target=child, args=(sys.argv[1],))
    p.start()
    p.join(30)
"""


def test_a_forked_worker_records_its_own_process(tmp_path: Path) -> None:
    import sqlite3

    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    db = tmp_path / "fork.db"
    out = subprocess.run([sys.executable, str(script), f"sqlite:///{db}"], capture_output=True, text=True, timeout=60)
    job_id, pid = out.stdout.split()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone() == (int(pid),)


def test_a_resume_with_an_input_no_node_reads_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    from aetherflow import Suspend, UsageError

    @node
    def gate(approved: bool = False) -> str:
        if not approved:
            raise Suspend("approve?")
        return "ok"

    with Worker(threads=1, store=f"sqlite:///{tmp_path / 'u.db'}", flows=[gate]) as w:
        job = w.submit(gate)
        with pytest.raises(AetherFlowError):
            job.result(10)
        with pytest.raises(UsageError, match="Did you mean 'approved'"):
            w.resume(job.id, inputs={"aproved": True})
        assert w.store.job(job.id).status == "suspended"
        assert w.resume(job.id, inputs={"approved": True}).result(10) == "ok"


TORN_DOWN_JOB = (
    "TEARDOWN_SECONDS = 60\n"
    + SLOW_TEARDOWN_CONTEXT
    + """
@node
def first(x: int) -> int:
    return x + 1

@node
def last(first: int, scratch) -> int:
    return first * 10

with Worker(Ctx, threads=1, store=sys.argv[1]) as w:
    w.submit(first.then(last).named("torn"), {"x": 1}).result()
"""
)


def test_a_kill_9_during_a_jobs_teardown_leaves_its_last_run_and_its_end_recorded(tmp_path: Path) -> None:
    """The last node's run and the job's end land together, before the job's scopes are torn down: nothing to recover."""
    import signal

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    signalled_while_tearing_down(TORN_DOWN_JOB, url, signal.SIGKILL)
    store = open_store(url)
    try:
        [job] = store.jobs()
        assert (job.status, job.output) == ("completed", 20)
        assert [(r.node, r.status) for r in store.node_runs(job.id)] == [("first", "completed"), ("last", "completed")]
        assert store.orphaned_jobs(30.0, time.time()) == []
    finally:
        store.close()


CTRL_C_WHILE_ENDING = (
    """
import os, sys, threading, time
from aetherflow import Worker, node, open_store

@node
def pay(x: int) -> int:
    with open(os.environ["MARKER"], "a") as f:
        f.write("pay\\n")
    return x * 10

store = open_store(sys.argv[1])
execute = type(store)._execute_batch

slowed = []

def slow_end(self, statements):
    if not slowed and any("UPDATE jobs SET status" in sql for sql, _ in statements):
        slowed.append(1)
        print("ENDING", flush=True)
        time.sleep(5)  # the commit of the job's end, slow: the Ctrl-C lands here
    return execute(self, statements)

type(store)._execute_batch = slow_end
w = Worker(threads=1, store=store)
flow, inputs = pay.named("pays"), {"x": 1}
"""
    + RUN_INTERRUPTED_THEN_CLOSE
)


@node
def pay(x: int) -> int:
    with open(os.environ["MARKER"], "a") as f:
        f.write("pay\n")
    return x * 10


def test_one_ctrl_c_while_runs_caller_records_a_jobs_end_records_it_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DESIGN: the first SIGINT marks unfinished jobs cancelled in the store (the job is cancelled in memory too).

    A Ctrl-C that lands while `run`'s caller commits the last run with the job's end
    leaves the job `running` in the store instead: `recover` then runs its node again
    (its side effect twice) and completes a job its caller was told was cancelled.
    """
    import signal

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    marker = tmp_path / "marker"
    monkeypatch.setenv("MARKER", str(marker))
    with subprocess.Popen([sys.executable, "-c", CTRL_C_WHILE_ENDING, url], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ENDING"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert out.split() == ["INTERRUPTED", "CLOSED"], out
    store = open_store(url)
    try:
        [job] = store.jobs()
        assert job.status == "cancelled", job.status
    finally:
        store.close()
    with Worker(threads=1, store=url, flows=[pay.named("pays")]) as w:
        for recovered in w.recover():
            recovered.result(10)
    assert marker.read_text().split() == ["pay"]
