"""Seed 000: two loop controllers that use the same key name without clashing.

Each controller keeps `loop_iteration` in its own `node_state` (the routine-namespaced job
data of seed 000), so the two never overwrite each other, while `job_state` holds what
they share.
"""

from __future__ import annotations

from aetherflow import Flow, Worker, node


@node
def outer_step(job_state, node_state) -> int:
    i = node_state.apply("loop_iteration", lambda n: n + 1, default=0)
    job_state.apply("trace", lambda t: [*t, f"outer{i}"], default=[])
    return i


@node
def outer_more(outer_step: int, limit_outer: int = 2) -> bool:
    return outer_step < limit_outer


@node
def inner_step(job_state, node_state) -> int:
    i = node_state.apply("loop_iteration", lambda n: n + 1, default=0)
    job_state.apply("trace", lambda t: [*t, f"inner{i}"], default=[])
    return i


@node
def inner_more(inner_step: int, limit_inner: int = 3) -> bool:
    return inner_step < limit_inner


@node
def report(job_state) -> list[str]:
    return job_state["trace"]


flow = Flow("loop-controllers")
flow.add(outer_step, outer_more, inner_step, inner_more, report)
flow.branch(outer_more, {True: outer_step, False: inner_step})
flow.branch(inner_more, {True: inner_step, False: report})

if __name__ == "__main__":
    with Worker(threads=2) as worker:
        job = worker.submit(flow, {"limit_outer": 2, "limit_inner": 3})
        print("trace:", job.result())
        print("outer_step loop_iteration:", job.node_state("outer_step"))
        print("inner_step loop_iteration:", job.node_state("inner_step"))
