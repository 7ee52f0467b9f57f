"""Stress: each job gets exactly its own context's providers, whatever is freed and re-made.

CPython reuses the id of a freed object at once, so these tests free a context or a flow
after every request and make a new one: a cache keyed by ``id()`` hands the next request
the previous one's providers. They also check that a worker serving such requests does
not keep every context it has seen alive.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref

from aetherflow import BaseFlowContext, Flow, Worker, locked, node, providers
from shapes import tiny_switch_interval

REQUESTS = 3000


class RequestContext(BaseFlowContext):
    request_value = providers.Object(None)


@node
def echo_request(request_value: object, request: int) -> tuple[object, int]:
    return request_value, request


def test_new_context_per_request_gets_its_own_provider_value(worker: Worker) -> None:
    """A context instance made per request, then freed: every job sees its own request's value."""
    flow = echo_request.as_flow()
    alive: list[weakref.ref[object]] = []
    wrong = []
    for i in range(REQUESTS):
        ctx = RequestContext(request_value=providers.Object(f"value of request {i}"))
        alive.append(weakref.ref(ctx))
        got = flow.run({"request": i}, context=ctx, worker=worker)
        if got != (f"value of request {i}", i):
            wrong.append((i, got))
        del ctx
        if i % 500 == 0:
            gc.collect()
    assert wrong == []
    gc.collect()
    still_alive = sum(1 for ref in alive if ref() is not None)
    assert still_alive <= 300, f"the worker keeps {still_alive} of {REQUESTS} freed contexts alive"


def test_contexts_made_per_request_in_parallel_each_reach_only_their_jobs(worker: Worker) -> None:
    """Jobs in flight at once, each with a context made for it and freed after: no mix-up."""
    flow = echo_request.as_flow()
    wrong = []
    for batch in range(REQUESTS // 50):
        requests = range(batch * 50, batch * 50 + 50)
        jobs = [
            worker.submit(
                flow, {"request": i}, context=RequestContext(request_value=providers.Object(f"value of request {i}"))
            )
            for i in requests
        ]
        for i, job in zip(requests, jobs, strict=True):
            got = job.result(timeout=30)
            if got != (f"value of request {i}", i):
                wrong.append((i, got))
        del jobs
    assert wrong == []


class TwoServices(BaseFlowContext):
    left = providers.Object("left service")
    right = providers.Object("right service")


@node
def use_left(left: str) -> str:
    return left


@node
def use_right(right: str) -> str:
    return right


def test_new_flow_object_per_request_gets_its_own_providers() -> None:
    """A flow object made per request, then freed: no job runs with another flow's providers."""
    ctx = TwoServices()
    results = []
    with Worker(ctx, threads=2) as worker:
        for i in range(REQUESTS):
            wanted = use_left if i % 2 == 0 else use_right
            flow = Flow([wanted], name=f"request-{i}")
            results.append(flow.run(worker=worker))
            del flow
            if i % 500 == 0:
                gc.collect()
    expected = ["left service" if i % 2 == 0 else "right service" for i in range(REQUESTS)]
    assert results == expected


def test_flows_freed_per_request_are_not_kept_alive_by_the_worker() -> None:
    """A long-lived worker serving a new flow object per request does not grow without bound."""
    ctx = TwoServices()
    alive: list[weakref.ref[object]] = []
    with Worker(ctx, threads=2) as worker:
        for _ in range(REQUESTS):
            flow = Flow([use_left], name="request")
            flow.run(worker=worker)
            alive.append(weakref.ref(flow.graph))
            del flow
        gc.collect()
        still_alive = sum(1 for ref in alive if ref() is not None)
    assert still_alive <= 300, f"the worker keeps {still_alive} of {REQUESTS} freed flows alive"


# -- one guarded Singleton, one lock -------------------------------------------------------

THREADS = 16
INCREMENTS = 50
TRIALS = 200


class Counts(BaseFlowContext):
    counts = providers.Singleton(dict)


def _race_to_first_use(ctx: Counts) -> list[object]:
    """THREADS threads inject ``ctx.counts`` at the same moment, then each adds INCREMENTS to it."""
    start = threading.Barrier(THREADS)
    handed_out: list[object] = []

    def bump() -> None:
        start.wait()
        counts = ctx.counts.inject()  # what a node parameter named `counts` receives
        handed_out.append(counts)
        for _ in range(INCREMENTS):
            with locked(counts):
                counts["n"] = counts.get("n", 0) + 1

    threads = [threading.Thread(target=bump) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return handed_out


def test_guarded_singleton_has_one_lock_when_threads_race_to_first_use() -> None:
    """Threads that first receive a guarded Singleton at once share one proxy and one lock:
    `with locked(d): d[k] += 1` loses no update."""
    deadline = time.monotonic() + 20
    with tiny_switch_interval():
        for trial in range(TRIALS):
            ctx = Counts()
            handed_out = _race_to_first_use(ctx)
            assert len({id(d) for d in handed_out}) == 1, f"trial {trial}: several proxies, several locks"
            assert ctx.counts()["n"] == THREADS * INCREMENTS, f"trial {trial}: updates lost"
            if time.monotonic() > deadline:
                break
