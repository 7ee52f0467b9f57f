"""A crash mid-job and its recovery: completed nodes are not run again.

The first run happens in a child process that dies (os._exit) inside the third node. A
new worker then calls `recover()`, which finds the job whose worker process is gone and
continues it from its last committed node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from aetherflow import Worker, node

LOG = Path(os.environ.get("AETHERFLOW_EXAMPLE_LOG", Path(tempfile.gettempdir()) / "aetherflow-crash-example.log"))


def ran(name: str) -> None:
    with LOG.open("a") as f:
        f.write(name + "\n")


@node
def fetch(n: int) -> list[int]:
    ran("fetch")
    return list(range(n))


@node
def enrich(fetch: list[int], job_state) -> list[int]:
    ran("enrich")
    job_state.set("enriched", len(fetch))
    return [x * 10 for x in fetch]


@node
def publish(enrich: list[int]) -> int:
    if os.environ.get("CRASH_NOW") == "1":
        os._exit(1)  # the process dies: no cleanup, nothing flushed
    ran("publish")
    return sum(enrich)


flow = fetch.then(enrich).then(publish).named("crashy")

if __name__ == "__main__":
    db = Path(tempfile.mkdtemp()) / "runs.db"
    url = f"sqlite:///{db}"
    LOG.write_text("")
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        with Worker(threads=1, store=sys.argv[2]) as worker:
            worker.submit(flow, {"n": 5}).result()
        sys.exit(0)
    env = {**os.environ, "CRASH_NOW": "1", "AETHERFLOW_EXAMPLE_LOG": str(LOG)}
    code = subprocess.run([sys.executable, __file__, "child", url], env=env).returncode
    print(f"child process died with exit code {code}; nodes that ran: {LOG.read_text().split()}")
    with Worker(threads=1, store=url, flows=[flow]) as worker:
        jobs = worker.recover()
        print(f"recovered {len(jobs)} job(s): result {jobs[0].result()}, state {jobs[0].state}")
    print(f"nodes that ran in all: {LOG.read_text().split()}  (fetch and enrich once each)")
