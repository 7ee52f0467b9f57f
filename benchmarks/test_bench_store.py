"""pytest-benchmark suites for durable runs on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from aetherflow import Worker, node


@node
def step(x: int, job_state) -> int:
    job_state.set("x", x)
    return x + 1


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_sqlite_chain_100(benchmark, tmp_path: Path, durability: str) -> None:
    flow = step.repeat(100)
    with Worker(threads=8, store=f"sqlite:///{tmp_path / 'b.db'}", durability=durability) as w:
        assert benchmark(lambda: flow.run({"x": 0}, worker=w)) == 100
