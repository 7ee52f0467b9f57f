"""State: commit at completion, read-your-writes, conflicts, apply, three scopes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aetherflow import Flow, NodeError, StateConflictError, Worker, node
from aetherflow.state import DELETED, StateConflict, StateHandle, StateScope, StateSpace, commit


def test_node_reads_its_own_writes_before_commit() -> None:
    space = StateSpace(StateScope.JOB)
    h = StateHandle(space)
    h.set("a", 1)
    assert h["a"] == 1 and h.get("a") == 1
    assert space.snapshot() == {}  # nobody else sees it yet
    commit([h], "job", "n")
    assert space.snapshot() == {"a": 1}


def test_apply_is_reapplied_on_latest_value_at_commit() -> None:
    space = StateSpace(StateScope.JOB)
    first, second = StateHandle(space), StateHandle(space)
    assert first.apply("n", lambda v: v + 1, default=0) == 1
    assert second.apply("n", lambda v: v + 1, default=0) == 1
    commit([first], "job", "a")
    commit([second], "job", "b")
    assert space.snapshot() == {"n": 2}


def test_read_then_set_after_another_commit_is_a_conflict() -> None:
    space = StateSpace(StateScope.JOB)
    reader, other = StateHandle(space), StateHandle(space)
    seen = reader.get("k", 0)
    other.set("k", 10)
    commit([other], "job", "other")
    reader.set("k", seen + 1)
    with pytest.raises(StateConflict, match="'k'"):
        commit([reader], "job", "reader")
    assert space.snapshot() == {"k": 10}


def test_blind_writes_last_commit_wins() -> None:
    space = StateSpace(StateScope.JOB)
    a, b = StateHandle(space), StateHandle(space)
    a.set("k", "a")
    b.set("k", "b")
    commit([a], "job", "a")
    commit([b], "job", "b")
    assert space.snapshot() == {"k": "b"}


def test_delete_and_versions_in_commit_records() -> None:
    space = StateSpace(StateScope.NODE, "n")
    h = StateHandle(space)
    h.update({"a": 1, "b": 2})
    [c1] = commit([h], "job", "n")
    assert [(w.key, w.value, w.version) for w in c1.writes] == [("a", 1, 1), ("b", 2, 1)]
    h2 = StateHandle(space)
    h2.delete("a")
    assert "a" not in h2
    [c2] = commit([h2], "job", "n")
    assert c2.writes[0].value is DELETED and c2.writes[0].version == 2
    assert space.snapshot() == {"b": 2}
    assert (c2.scope, c2.namespace, c2.job_id, c2.node) == (StateScope.NODE, "n", "job", "n")


def test_commit_of_several_handles_is_all_or_nothing() -> None:
    job, mine = StateSpace(StateScope.JOB), StateSpace(StateScope.NODE, "n")
    reader = StateHandle(job)
    reader.get("k")
    other = StateHandle(job)
    other.set("k", 1)
    commit([other], "job", "o")
    private = StateHandle(mine)
    private.set("x", 1)
    reader.set("k", 2)
    with pytest.raises(StateConflict):
        commit([private, reader], "job", "n")
    assert mine.snapshot() == {}


@given(st.lists(st.integers(min_value=-1000, max_value=1000), min_size=1, max_size=40))
@settings(max_examples=30, deadline=None)
def test_concurrent_applies_always_sum_exactly(deltas: list[int]) -> None:
    space = StateSpace(StateScope.JOB)
    start = threading.Barrier(len(deltas))

    def add(delta: int) -> None:
        h = StateHandle(space)
        h.apply("total", lambda v: v + delta, default=0)
        start.wait()
        commit([h], "job", f"n{delta}")

    threads = [threading.Thread(target=add, args=(d,)) for d in deltas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert space.snapshot() == {"total": sum(deltas)}


def test_other_nodes_see_writes_only_after_completion(worker) -> None:
    wrote = threading.Event()
    observed = []

    @node
    def root() -> int:
        return 0

    @node
    def writer(root: int, job_state) -> str:
        job_state.set("k", "v")
        wrote.set()
        time.sleep(0.1)
        return "done"

    @node
    def watcher(root: int, job_state) -> None:
        assert wrote.wait(5)
        observed.append(job_state.get("k"))

    @node
    def after(writer: str, job_state) -> str:
        return job_state["k"]

    out = Flow([root, writer, watcher, after]).run(worker=worker)
    assert observed == [None]
    assert out == {"watcher": None, "after": "v"}


def test_failed_attempt_leaves_no_trace_even_when_retried(worker) -> None:
    attempts = []

    @node(retries=1)
    def flaky(job_state, node_state) -> int:
        attempts.append(1)
        job_state.apply("count", lambda c: c + 1, default=0)
        node_state.set("tries", len(attempts))
        if len(attempts) == 1:
            raise OSError("first attempt fails")
        return len(attempts)

    job = worker.submit(flaky)
    assert job.result() == 2
    assert job.state == {"count": 1}
    assert job.node_state("flaky") == {"tries": 2}


def test_failed_job_keeps_only_completed_nodes_commits(worker) -> None:
    @node
    def good(job_state) -> int:
        job_state.set("good", True)
        return 1

    @node
    def bad(good: int, job_state) -> None:
        job_state.set("bad", True)
        raise ValueError("no")

    job = worker.submit(good.then(bad))
    with pytest.raises(NodeError):
        job.result()
    assert job.state == {"good": True}


def test_parallel_read_then_set_is_rerun_so_no_update_is_lost(worker) -> None:
    """Two nodes read k, then both set k+1: the loser of the race is re-run and sees 1."""
    both_read = threading.Barrier(2, timeout=5)

    @node
    def root() -> int:
        return 0

    def make(name: str):
        def bump(root: int, job_state, execution) -> int:
            value = job_state.get("k", 0)
            if execution.attempt == 1:
                both_read.wait()
            job_state.set("k", value + 1)
            return execution.attempt

        bump.__name__ = name
        return node(bump)

    job = worker.submit(root.fan_out_to([make("one"), make("two")]))
    attempts = job.result()
    assert job.state == {"k": 2}
    assert sorted(attempts.values()) == [1, 2]


def test_state_conflict_error_after_conflict_retries(worker) -> None:
    calls = []

    @node(conflict_retries=2)
    def greedy(job_state, execution) -> None:
        calls.append(execution.attempt)
        job_state.get("k", 0)
        # another node's commit lands between this read and the commit, every time
        space = job_state.space
        spoiler = type(job_state)(space)
        spoiler.set("k", len(calls))
        from aetherflow.state import commit as commit_now

        commit_now([spoiler], execution.job_id, "spoiler")
        job_state.set("k", -1)

    with pytest.raises(StateConflictError, match="gave up after 2 re-runs") as info:
        greedy.run(worker=worker)
    assert calls == [1, 2, 3]
    assert info.value.node == "greedy"


def test_seed_002_loop_counts_call_times_privately(worker) -> None:
    @node
    def start() -> None:
        return None

    @node
    def add_ten(job_state, node_state) -> None:
        node_state.apply("call_times", lambda c: c + 1, default=0)
        job_state.apply("num", lambda n: n + 10, default=0)

    @node
    def over_thirty(job_state) -> bool:
        return job_state["num"] > 30

    @node
    def end(job_state, node_state) -> dict:
        return {"num": job_state.get("num"), "call_times": node_state.get("call_times")}

    flow = start.then(add_ten).then(over_thirty).branch_on({False: add_ten, True: end})
    job = worker.submit(flow)
    assert job.result() == {"num": 40, "call_times": None}
    assert job.node_state("add_ten") == {"call_times": 4}


def test_worker_state_spans_jobs_of_one_worker_per_node() -> None:
    @node
    def count(worker_state) -> int:
        return worker_state.apply("jobs", lambda n: n + 1, default=0)

    with Worker(threads=4) as w:
        w.map(count.named("counter"), [{} for _ in range(25)], progress=False)
        assert w.worker_state("counter", "count") == {"jobs": 25}
    with Worker(threads=1) as other:
        assert other.worker_state("counter", "count") == {}


def test_node_state_is_kept_across_loop_iterations_and_private(worker) -> None:
    @node
    def tick(node_state) -> int:
        return node_state.apply("i", lambda i: i + 1, default=0)

    @node
    def peek(node_state) -> dict:
        return node_state.snapshot()

    flow = tick.then(tick).then(peek)  # two vertices: two private namespaces
    job = worker.submit(flow)
    assert job.result() == {}
    assert job.node_state("tick") == {"i": 1} and job.node_state("tick_2") == {"i": 1}


# -- every way of reading counts as a read (DESIGN §4) ---------------------------------------

NODES = 24


def _add_one(job_state: StateHandle, seen: int) -> None:
    job_state.set("n", seen + 1)


def _claim_slot(job_state: StateHandle, taken: int) -> None:
    job_state.set(f"slot {taken}", True)


def _first_free_slot(job_state: StateHandle) -> int:
    i = 0
    while f"slot {i}" in job_state:
        i += 1
    return i


def _n_is(state: dict[str, object]) -> bool:
    return state == {"n": NODES}


def _slots_are(state: dict[str, object]) -> bool:
    return sorted(state) == sorted(f"slot {i}" for i in range(NODES))


# read: what a node reads; write: what it then sets from it; check: the job state expected.
READ_THEN_SET: dict[
    str, tuple[Callable[[StateHandle], int], Callable[[StateHandle, int], None], Callable[[dict[str, object]], bool]]
] = {
    "snapshot()": (lambda h: h.snapshot().get("n", 0), _add_one, _n_is),
    "items()": (lambda h: dict(h.items()).get("n", 0), _add_one, _n_is),
    "values()": (lambda h: sum(h.values()), _add_one, _n_is),  # "n" is the only key
    "len()": (len, _claim_slot, _slots_are),
    "iteration": (lambda h: sum(1 for _ in h), _claim_slot, _slots_are),
    "keys()": (lambda h: len(list(h.keys())), _claim_slot, _slots_are),
    "in": (_first_free_slot, _claim_slot, _slots_are),
}


@pytest.mark.parametrize("read", list(READ_THEN_SET))
def test_parallel_nodes_reading_any_way_then_setting_lose_no_update(read: str) -> None:
    """Many nodes in parallel read the job state (any way) and then set a key from what they
    read: a node whose read went stale is re-run, so every node's update is in the result."""
    read_state, write_state, all_updates_kept = READ_THEN_SET[read]

    @node
    def batch() -> list[int]:
        return list(range(NODES))

    @node(conflict_retries=10 * NODES)
    def update(entry: int, job_state: StateHandle) -> int:
        seen = read_state(job_state)
        time.sleep(0.001)  # work between the read and the write: parallel nodes overlap
        write_state(job_state, seen)
        return entry

    with Worker(threads=8) as w:
        for _ in range(3):
            job = w.submit(batch.map(update))
            assert job.result(timeout=60) == list(range(NODES))
            assert all_updates_kept(job.state), job.state


@pytest.mark.parametrize("read", ["snapshot", "iteration", "keys", "items", "values", "len", "in"])
def test_every_way_of_reading_counts_for_conflicts(read: str) -> None:
    """A node that read a key any way, then set it after another node committed it, conflicts."""
    space = StateSpace(StateScope.JOB)
    setup = StateHandle(space)
    setup.set("k", 1)
    commit([setup], "job", "setup")
    reader, other = StateHandle(space), StateHandle(space)
    reads = {
        "snapshot": reader.snapshot,
        "iteration": lambda: list(reader),
        "keys": reader.keys,
        "items": reader.items,
        "values": reader.values,
        "len": lambda: len(reader),
        "in": lambda: "k" in reader,
    }
    reads[read]()
    other.set("k", 2)
    commit([other], "job", "other")
    reader.set("k", 3)
    with pytest.raises(StateConflict):
        commit([reader], "job", "reader")
    assert space.snapshot() == {"k": 2}


def test_snapshot_counts_as_a_read_of_keys_it_did_not_find() -> None:
    """A key absent from a snapshot, then set after another node created it, conflicts."""
    space = StateSpace(StateScope.JOB)
    reader, other = StateHandle(space), StateHandle(space)
    assert reader.snapshot() == {}
    other.set("k", "theirs")
    commit([other], "job", "other")
    reader.set("k", "mine")
    with pytest.raises(StateConflict):
        commit([reader], "job", "reader")


def test_blind_write_after_a_snapshot_of_other_keys_does_not_conflict_on_them() -> None:
    """Reading the state does not make a write of a key nobody else touched a conflict."""
    space = StateSpace(StateScope.JOB)
    reader, other = StateHandle(space), StateHandle(space)
    reader.snapshot()
    other.set("theirs", 1)
    commit([other], "job", "other")
    reader.set("mine", 2)
    commit([reader], "job", "reader")
    assert space.snapshot() == {"theirs": 1, "mine": 2}


def test_a_blind_write_then_a_snapshot_commits_when_nobody_else_wrote() -> None:
    """Writing a key, then reading the whole state, is no conflict by itself."""
    space = StateSpace(StateScope.JOB)
    earlier = StateHandle(space)
    earlier.set("k", "earlier")
    commit([earlier], "job", "earlier")
    node = StateHandle(space)
    node.set("k", "mine")
    assert node.snapshot() == {"k": "mine"}
    node.set("k", "mine again")
    commit([node], "job", "node")
    assert space.snapshot() == {"k": "mine again"}
