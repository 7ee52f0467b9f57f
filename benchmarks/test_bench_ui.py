"""Dashboard server time (issue 16): the jobs page and a job with 10,000 node runs, on a big store.

The store holds about ``AETHERFLOW_BENCH_UI_EVENTS`` events (default 1,000,000: many
100-item map jobs, written with ``durability="async"``), plus one job of 10,000 node runs.
Targets: jobs page < 100 ms, that job's page < 500 ms (server time, through Starlette's
TestClient).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient

from aetherflow import Worker, node, open_store
from aetherflow.ui.app import create_app

EVENTS = int(os.environ.get("AETHERFLOW_BENCH_UI_EVENTS", "1000000"))


@node
def items(n: int) -> list[int]:
    return list(range(n))


@node
def square(x: int) -> int:
    return x * x


@node
def add(square: list[int]) -> int:
    return sum(square)


flow = items.map(square).fan_in(add).named("bench_ui")


@pytest.fixture(scope="module")
def store_and_big_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'big.db'}"
    with Worker(store=url, threads=4, durability="async") as w:
        big = w.submit(flow, {"n": 10_000}).id
        per_job = 2 + 2 * 102  # job events + (started, completed) per node run
        w.map(flow, [{"n": 100}] * max(0, (EVENTS - 30_000) // per_job), progress=False)
    store = open_store(url)
    with TestClient(create_app(store)) as client:
        yield client, big
    store.close()


def test_jobs_page(benchmark, store_and_big_job: tuple[TestClient, str]) -> None:
    client, _ = store_and_big_job
    assert benchmark(lambda: client.get("/jobs").status_code) == 200


def test_job_with_10000_node_runs(benchmark, store_and_big_job: tuple[TestClient, str]) -> None:
    client, big = store_and_big_job
    assert benchmark(lambda: client.get(f"/jobs/{big}").status_code) == 200
