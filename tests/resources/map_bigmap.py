"""h32: one process of a kill -9 campaign over a big worker.map.

``python map_bigmap.py URL MARKS map|recover N``: `map` maps N jobs of a two-node
chain; `recover` recovers what killed processes left. Each node appends
``pid job node`` to MARKS as its last act and returns this pid (the recorded output says
which process completed it).
"""

from __future__ import annotations

import os
import sys

from aetherflow import Worker, current_execution, node

url, marks, mode = sys.argv[1:4]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 0
fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def mark() -> int:
    ex = current_execution()
    os.write(fd, f"{os.getpid()} {ex.job_id} {ex.node}\n".encode())
    return os.getpid()


@node
def a(x: int, job_state) -> int:
    job_state.set("a", x)
    return mark()


@node
def b(a: int, job_state) -> int:
    job_state.set("b", a)
    return mark()


flow = a.then(b).named("bigmap")
with Worker(threads=4, store=url, flows=[flow]) as w:
    if mode == "map":
        print("READY", flush=True)
        w.map(flow, [{"x": i} for i in range(n)], progress=False, return_exceptions=True)
    else:
        for job in w.recover():
            job.result(120)
print("DONE", flush=True)
