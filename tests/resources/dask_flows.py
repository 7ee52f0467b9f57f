"""Flows and a context the Dask tests run; importable on the Dask workers."""

from __future__ import annotations

import os
import threading

from aetherflow import BaseFlowContext, node, providers

SETUPS: list[str] = []


def open_conn() -> object:
    # one per Dask worker process: recorded in a file named after the process
    folder = os.environ.get("AETHERFLOW_DASK_LOG", "")
    if folder:
        with open(os.path.join(folder, f"setup-{os.getpid()}"), "a") as f:
            f.write("setup\n")
    conn = {"pid": os.getpid()}
    yield conn
    if folder:
        with open(os.path.join(folder, f"teardown-{os.getpid()}"), "a") as f:
            f.write("teardown\n")


class DaskContext(BaseFlowContext):
    conn = providers.WorkerScoped(open_conn)
    local = providers.ThreadLocalSingleton(dict)


@node
def split(n: int) -> list[int]:
    return list(range(n))


@node
def square(i: int) -> int:
    return i * i


@node
def total(square: list[int], job_state) -> int:
    job_state.set("total", sum(square))
    return sum(square)


squares = split.map(square).then(total).named("squares")


@node
def where(i: int, conn: dict, local: dict) -> tuple[int, int, str]:
    local["seen"] = local.get("seen", 0) + 1
    return (conn["pid"], os.getpid(), threading.current_thread().name)


@node
def step(job_state, node_state) -> int:
    node_state.apply("calls", lambda c: c + 1, default=0)
    return job_state.apply("n", lambda n: n + 1, default=0)


@node
def more(step: int) -> bool:
    return step < 4


@node
def done(job_state) -> int:
    return job_state["n"]


loop = step.then(more).branch_on({True: step, False: done}).named("dask-loop")


@node
def count(worker_state) -> int:
    return worker_state.apply("jobs", lambda n: n + 1, default=0)


def busy(n: int) -> int:
    """Pure-Python CPU work (holds the GIL)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@node
def crunch(size: int) -> int:
    return busy(size)


@node(retries=2)
def flaky_fetch(execution) -> str:
    if execution.attempt < 3:
        raise ConnectionError(f"attempt {execution.attempt} lost the connection")
    return "ok"


@node
def boom_on_cluster(x: int) -> int:
    raise ValueError(f"bad {x}")
