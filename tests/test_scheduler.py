"""Scheduler properties: any DAG gives the outputs of a plain sequential evaluation."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aetherflow import Flow, LoopLimitError, NodeError, Worker, node
from shapes import even, is_even, odd, split, square, total


@pytest.fixture(scope="module")
def shared_worker() -> Iterator[Worker]:
    w = Worker(threads=8)
    yield w
    w.close()


@st.composite
def dags(draw: st.DrawFn) -> list[list[int]]:
    """preds[i] ⊆ {0..i-1}: a random DAG in topological order."""
    n = draw(st.integers(min_value=1, max_value=14))
    return [
        sorted(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=min(i, 4)))) if i else []
        for i in range(n)
    ]


def build(preds: list[list[int]]) -> Flow:
    nodes = []
    for i, ps in enumerate(preds):
        params = ", ".join(f"v{p}: int" for p in ps) or "seed: int"
        body = " + ".join(f"v{p}" for p in ps) or "seed"
        ns: dict[str, object] = {}
        exec(f"def v{i}({params}) -> int:\n    return ({body}) * 3 % 1000 + {i}\n", ns)
        nodes.append(node(ns[f"v{i}"]))
    return Flow(nodes, name="random-dag")


def sequential(preds: list[list[int]], seed: int) -> dict[str, int]:
    values: list[int] = []
    for i, ps in enumerate(preds):
        total = sum(values[p] for p in ps) if ps else seed
        values.append(total * 3 % 1000 + i)
    used = {p for ps in preds for p in ps}
    return {f"v{i}": values[i] for i in range(len(preds)) if i not in used}


@given(dags(), st.integers(min_value=0, max_value=100))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_dag_matches_sequential_evaluation(shared_worker: Worker, preds: list[list[int]], seed: int) -> None:
    flow = build(preds)
    expected = sequential(preds, seed)
    out = flow.run({"seed": seed}, worker=shared_worker)
    got = out if isinstance(out, dict) and len(expected) > 1 else {next(iter(expected)): out}
    assert got == expected


@node
def top(x: int) -> int:
    return x


@node
def left(top: int) -> int:
    return top + 1


@node
def right(top: int) -> int:
    return top * 2


@node
def bottom(left: int, right: int) -> int:
    return left + right


DIAMOND = top.fan_out_to([left, right]).fan_in(bottom)


def diamond_of(x: int) -> int:
    return (x + 1) + 2 * x


def test_many_threads_many_jobs_of_a_diamond_finish_in_bounded_time() -> None:
    """16 threads x 2,000 jobs of a 4-node diamond: every result exact, nothing hangs."""
    with Worker(threads=16) as w:
        jobs = [w.submit(DIAMOND, {"x": i}) for i in range(2000)]
        results = [j.result(timeout=60) for j in jobs]
    assert results == [diamond_of(i) for i in range(2000)]


def test_many_threads_calling_run_at_once_each_get_their_own_results() -> None:
    """Callers work on their own jobs while the pool takes the parallel branches."""
    failures: list[str] = []
    with Worker(threads=4) as w:

        def caller(base: int) -> None:
            for i in range(base, base + 100):
                got = w.run(DIAMOND, {"x": i})
                if got != diamond_of(i):
                    failures.append(f"x={i}: {got}")

        callers = [threading.Thread(target=caller, args=(1000 * t,)) for t in range(16)]
        for t in callers:
            t.start()
        for t in callers:
            t.join(60)
        assert not any(t.is_alive() for t in callers), "a caller hung"
    assert failures == []


def test_a_branch_target_that_also_reads_the_loop_body_runs_once_when_chosen() -> None:
    """`done` waits for `check` to choose it; `step` signalling it on every lap must not start it early."""
    from collections import Counter

    from aetherflow import Worker, node

    ran: Counter[str] = Counter()

    @node
    def step(job_state) -> int:
        ran["step"] += 1
        return job_state.apply("n", lambda n: n + 1, default=0)

    @node
    def check(step: int) -> bool:
        return step >= 3

    @node
    def done(check: bool, step: int) -> str:
        ran["done"] += 1
        return f"done at {step}"

    flow = step.then(check).branch_on({False: step, True: done}).named("lap")
    with Worker(threads=2) as w:
        for _ in range(20):
            ran.clear()
            assert w.run(flow) == "done at 3"
            assert ran == {"step": 3, "done": 1}


def test_map_runs_once_per_item_in_order(worker) -> None:
    assert split.map(square).run({"n": 6}, worker=worker) == [0, 1, 4, 9, 16, 25]
    assert split.map(square).fan_in(total).run({"n": 4}, worker=worker) == 14


def test_map_over_empty_list_gives_empty_list(worker) -> None:
    assert split.map(square).run({"n": 0}, worker=worker) == []


def test_map_over_non_iterable_fails_clearly(worker) -> None:
    @node
    def scalar() -> int:
        return 3

    with pytest.raises(NodeError, match="not iterable"):
        scalar.map(square).run(worker=worker)


def test_branch_takes_one_path_and_skips_the_other(worker) -> None:
    flow = is_even.branch_on({True: even, False: odd})
    assert flow.run({"x": 2}, worker=worker) == {"even": "2 is even"}
    job = worker.submit(flow, {"x": 3})
    assert job.result() == {"odd": "3 is odd"}
    assert job.node_statuses["even"] == "skipped"


def test_branch_value_matching_no_key_fails_naming_value_and_keys(worker) -> None:
    @node
    def pick(x: int) -> int:
        return x

    flow = pick.branch_on({1: even, 2: odd})
    with pytest.raises(NodeError, match=r"returned 7, which matches no branch \(keys: 1, 2\)"):
        flow.run({"x": 7}, worker=worker)


def test_branch_default_catches_other_values(worker) -> None:
    @node
    def pick(x: int) -> int:
        return x

    @node
    def other(x: int) -> str:
        return "other"

    assert pick.branch_on({1: even}, default=other).run({"x": 9}, worker=worker) == {"other": "other"}


def test_node_after_skipped_node_is_skipped_unless_default(worker) -> None:
    @node
    def after(odd: str) -> str:
        return odd.upper()

    @node
    def tolerant(odd: str = "none") -> str:
        return odd

    flow = is_even.branch_on({True: even, False: odd}).then(after)
    job = worker.submit(flow, {"x": 2})
    job.result()
    assert job.node_statuses["after"] == "skipped"
    flow2 = is_even.branch_on({True: even, False: odd}).fan_in(tolerant)
    assert flow2.run({"x": 2}, worker=worker) == "none"


def test_loop_through_branch_repeats_until_exit(worker) -> None:
    @node
    def step(job_state) -> int:
        return job_state.apply("n", lambda n: n + 1, default=0)

    @node
    def more(step: int) -> bool:
        return step < 5

    @node
    def done(step: int) -> int:
        return step

    flow = step.then(more).branch_on({True: step, False: done})
    job = worker.submit(flow)
    assert job.result() == 5
    assert job.state == {"n": 5}


def test_loop_limit_stops_endless_loops(worker) -> None:
    @node(max_iterations=20)
    def spin() -> bool:
        return True

    @node
    def never() -> None:
        return None

    flow = spin.branch_on({True: spin, False: never})
    with pytest.raises(LoopLimitError, match="max_iterations=20"):
        flow.run(worker=worker)


def test_explicit_form_builds_a_loop(worker) -> None:
    @node
    def tick(job_state) -> int:
        return job_state.apply("t", lambda t: t + 1, default=0)

    @node
    def finish(job_state) -> int:
        return job_state["t"]

    @node
    def check(tick: int) -> bool:
        return tick >= 3

    flow = Flow("ticker")
    flow.add(tick, check, finish)
    flow.connect(tick, check)
    flow.branch(check, {False: tick, True: finish})
    assert flow.run(worker=worker) == 3
