"""Where node calls run: the local runner's threads and its event loop (runner.py)."""

from __future__ import annotations

import asyncio
import threading
import time

from aetherflow import (
    Worker,
    node,
)
from shapes import inc


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


def test_a_node_can_run_a_nested_chain_on_its_own_single_thread_worker() -> None:
    """The nested run works in the node's thread, so the one worker thread is not needed twice."""
    with Worker(threads=1) as w:
        inner = inc.then(inc).then(inc)

        @node
        def outer(x: int) -> int:
            return inner.run({"x": x}, worker=w)

        job = w.submit(outer, {"x": 1})
        assert job.result(10) == 4


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
