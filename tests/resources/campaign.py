"""One process of the kill -9 campaign (tests/test_recovery_campaign.py).

``python campaign.py STORE_URL MARKS_FILE``: recovers what killed processes left, resumes
suspended jobs, and submits one job of each shape not in the store yet (appending its id
to MARKS_FILE.acks once ``submit`` returned).
Every node appends ``pid job node iteration item`` to MARKS_FILE as the last thing it
does, and commits a ``job_state`` key of the same name: the test then checks that no run
recorded completed ran again in a later process, and that every commit survived.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import sys
import time

from aetherflow import Suspend, Worker, current_execution, node, open_store

MARKS = sys.argv[2] if len(sys.argv) > 2 else os.devnull


KILL_AT = int(os.environ.get("CAMPAIGN_KILL_AT", "0"))  # SIGKILL this process as its n-th node run starts
_started = itertools.count(1)


def _side_effect(job_state, item: object = "-") -> None:
    """A little work, then the side effect and the commit that a re-run would repeat."""
    if next(_started) == KILL_AT:  # every earlier completion is committed (sync): the crash recovery must not repeat
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(random.uniform(0.005, 0.05))
    ex = current_execution()
    assert ex is not None
    key = f"{ex.node}:{ex.iteration}:{item}"
    job_state.set(key, True)
    with open(MARKS, "a") as f:
        f.write(f"{os.getpid()} {ex.job_id} {ex.node} {ex.iteration} {item}\n")


@node
def a(x: int, job_state) -> int:
    _side_effect(job_state)
    return x + 1


@node
def b(a: int, job_state) -> int:
    _side_effect(job_state)
    return a + 1


@node
def c(b: int, job_state) -> int:
    _side_effect(job_state)
    return b + 1


@node
def summary(job_state) -> dict:
    _side_effect(job_state)
    return job_state.snapshot()


@node
def left(a: int, job_state) -> int:
    _side_effect(job_state)
    return a * 2


@node
def right(a: int, job_state) -> int:
    _side_effect(job_state)
    return a * 3


@node
def join(left: int, right: int, job_state) -> int:
    _side_effect(job_state)
    return left + right


@node
def items(x: int, job_state) -> list[int]:
    _side_effect(job_state)
    return list(range(x + 3))


@node
def square(n: int, job_state) -> int:
    _side_effect(job_state, n)
    return n * n


@node
def total(square: list[int], job_state) -> int:
    _side_effect(job_state)
    return sum(square)


@node
def charge(total: int, job_state) -> int:  # "charge the card": must never run twice
    _side_effect(job_state)
    return total


@node
def tick(job_state) -> int:
    _side_effect(job_state)
    return job_state.apply("count", lambda n: n + 1, default=0)


@node
def again(tick: int) -> bool:
    return tick < 3


@node
def approve(a: int, job_state, ok: bool = False) -> int:
    if not ok:
        raise Suspend("approve?")
    _side_effect(job_state)
    return a


FLOWS = {
    "chain": a.then(b).then(c).then(summary).named("chain"),
    "fanout": a.fan_out_to([left, right]).fan_in(join).then(summary).named("fanout"),
    "map": items.map(square).then(total).then(charge).then(summary).named("map"),
    "loop": a.then(tick).then(again).branch_on({True: tick, False: summary}).named("loop"),
    "suspend": a.then(approve).then(b).then(summary).named("suspend"),
}


def main(url: str) -> None:
    with Worker(threads=4, store=url, flows=FLOWS.values(), name=f"proc-{os.getpid()}") as worker:
        print("READY", flush=True)
        jobs = worker.recover()
        with open_store(url) as store:
            known = store.jobs(limit=1000)
        jobs += [worker.resume(j.id, inputs={"ok": True}) for j in known if j.status == "suspended"]
        for name in sorted(FLOWS.keys() - {j.flow for j in known}):
            job = worker.submit(FLOWS[name], {"x": 1})
            with open(MARKS + ".acks", "a") as f:
                f.write(job.id + "\n")
            jobs.append(job)
        for job in jobs:
            try:
                job.result(60)
            except Exception as exc:  # noqa: BLE001 - a suspended job is resumed by the next process
                print(type(exc).__name__, exc, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
