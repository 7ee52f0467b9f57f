"""A chain whose third node kills its process the first time: for recovery tests.

Run as a script: ``python crashing.py STORE_URL MARKER_FILE [jobs]``. Every node appends its
name to MARKER_FILE before returning, so the test can count how often each one ran.
"""

from __future__ import annotations

import os
import sys

from aetherflow import Worker, node

MARKER = os.environ.get("AETHERFLOW_MARKER", "")


def _mark(name: str) -> None:
    with open(MARKER, "a") as f:
        f.write(name + "\n")


@node
def a(x: int, job_state) -> int:
    job_state.set("a", x)
    _mark("a")
    return x + 1


@node
def b(a: int, job_state) -> int:
    job_state.apply("trail", lambda t: [*t, "b"], default=[])
    _mark("b")
    return a + 1


@node
def c(b: int) -> int:
    if os.environ.get("AETHERFLOW_CRASH") == "1":
        os._exit(17)  # a hard crash: no cleanup, no flush, like SIGKILL
    _mark("c")
    return b + 1


@node
def d(c: int, job_state) -> dict:
    _mark("d")
    return {"result": c + 1, "a": job_state["a"], "trail": job_state["trail"]}


FLOW = a.then(b).then(c).then(d).named("crashing")

if __name__ == "__main__":
    url, jobs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    worker = Worker(threads=2, store=url)
    for i in range(jobs):
        worker.submit(FLOW, {"x": i})
    worker.close()
