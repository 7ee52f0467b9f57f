"""h32: a map interrupted by SIGINT (twice), then recovered."""

from __future__ import annotations

import os
import sys
import time

from aetherflow import Worker, current_execution, node

url, marks, mode = sys.argv[1:4]


@node
def slow(i: int) -> int:
    with open(marks, "a") as f:
        f.write(f"{os.getpid()} {current_execution().job_id}\n")
    if i == 1:
        print("READY", flush=True)
    if mode == "map":  # a running node returns only when the test says so (or after 60 s)
        deadline = time.monotonic() + 60
        while not os.path.exists(f"{marks}.release") and time.monotonic() < deadline:
            time.sleep(0.01)
    return i


flow = slow.named("ctrlc_map")
with Worker(threads=2, store=url, flows=[flow]) as w:
    if mode == "map":
        w.map(flow, [{"i": i} for i in range(int(sys.argv[4]))], progress=False)
    else:
        for job in w.recover():
            job.result(60)
