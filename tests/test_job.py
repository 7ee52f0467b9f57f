"""Job: waiting for a result from many threads, racing with the job's end."""

from __future__ import annotations

import threading

import pytest

from aetherflow import Worker, node


def test_result_from_many_threads_waits_for_the_end_and_times_out_cleanly() -> None:
    gate = threading.Event()

    @node
    def held(x: int) -> int:
        assert gate.wait(10)
        return x * 2

    with Worker(threads=2) as w:
        job = w.submit(held, {"x": 21})
        got: list[int] = []
        waiters = [threading.Thread(target=lambda: got.append(job.result(10))) for _ in range(8)]
        for t in waiters:
            t.start()
        with pytest.raises(TimeoutError, match=f"Job {job.id} did not finish within 0.05 s"):
            job.result(timeout=0.05)
        assert not job.done()
        gate.set()
        for t in waiters:
            t.join(10)
        assert got == [42] * 8
        assert job.done() and job.result(0) == 42


def test_result_never_misses_a_job_ending_while_it_starts_waiting() -> None:
    """Jobs end on the worker's threads while two threads each ask for every result."""

    @node
    def square(x: int) -> int:
        return x * x

    with Worker(threads=4) as w:
        for _ in range(5):
            jobs = [w.submit(square, {"x": i}) for i in range(300)]
            results: list[list[int]] = [[], []]

            def collect(into: list[int], jobs: list = jobs) -> None:
                into.extend(job.result(10) for job in jobs)

            readers = [threading.Thread(target=collect, args=(r,)) for r in results]
            for t in readers:
                t.start()
            for t in readers:
                t.join(30)
            assert results[0] == results[1] == [i * i for i in range(300)]
