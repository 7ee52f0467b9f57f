"""h32: worker.run of a flow whose calling-thread branch is interrupted by SIGINT while a pool branch runs."""

from __future__ import annotations

import os
import sys
import time

from aetherflow import Flow, Worker, node

url, marks = sys.argv[1:3]


def mark(name: str) -> None:
    with open(marks, "a") as f:
        f.write(f"{os.getpid()} {name}\n")


@node
def root() -> int:
    return 1


@node
def here(root: int) -> int:  # runs on the calling thread: SIGINT lands here
    mark("here")
    print("READY", flush=True)
    time.sleep(30 if sys.argv[3] == "run" else 0)
    return root


@node
def there(root: int) -> int:  # on a pool thread
    mark("there")
    time.sleep(3 if sys.argv[3] == "run" else 0)
    return root


flow = Flow([root, here, there]).named("ctrlc_run")
with Worker(threads=2, store=url, flows=[flow]) as w:
    if sys.argv[3] == "run":
        w.run(flow)
    else:
        for job in w.recover():
            try:
                job.result(60)
            except Exception as exc:  # noqa: BLE001
                print("recovered job ended", exc)
