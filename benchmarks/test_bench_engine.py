"""pytest-benchmark suites for the engine (run: `pytest benchmarks --benchmark-only`).

Ratios against baselines are computed by compare.py; these give the distributions.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from compare import fan_out, inc, plain_chain


def test_chain_1000(benchmark, worker) -> None:
    flow = inc.repeat(1000)
    assert benchmark(lambda: flow.run({"x": 0}, worker=worker)) == 1000


def test_plain_calls_1000(benchmark) -> None:
    assert benchmark(plain_chain, 1000) == 1000


def test_fan_out_100(benchmark, worker) -> None:
    flow = fan_out(100)
    assert len(benchmark(lambda: flow.run(worker=worker))) == 100


def test_bare_thread_pool_100(benchmark) -> None:
    with ThreadPoolExecutor(8) as ex:

        def run() -> list[int]:
            return [f.result() for f in [ex.submit(inc.fn, 1) for _ in range(100)]]

        assert len(benchmark(run)) == 100


def test_map_1000(benchmark, worker) -> None:
    inputs = [{"x": i} for i in range(1000)]
    assert benchmark(lambda: worker.map(inc, inputs, progress=False))[-1] == 1000
