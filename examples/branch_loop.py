"""Seed 002's loop: `add_ten` adds 10 to the global `num` until `num > 30`.

It counts its own runs in `node_state` (component state, private); `end` sees `num == 40`
and no `call_times`, exactly as in the seed.
"""

from __future__ import annotations

from aetherflow import Worker, node


@node
def start() -> None:
    return None


@node
def add_ten(job_state, node_state) -> None:
    call_times = node_state.get("call_times", 0) + 1
    node_state.set("call_times", call_times)
    num = job_state.get("num", 0)
    job_state.set("num", num + 10)
    print(f"[a] run {call_times}, num = {num} -> {num + 10}")


@node
def over_thirty(job_state) -> bool:
    return job_state["num"] > 30


@node
def end(job_state, node_state) -> dict:
    print(f"->[end] call_times = {node_state.get('call_times')}")
    print(f"->[end] num = {job_state.get('num')}")
    return {"num": job_state.get("num"), "call_times": node_state.get("call_times")}


flow = start.then(add_ten).then(over_thirty).branch_on({False: add_ten, True: end}).named("add-ten-loop")

if __name__ == "__main__":
    with Worker(threads=2) as worker:
        job = worker.submit(flow)
        print("result:", job.result())
        print("add_ten's own state:", job.node_state("add_ten"))
