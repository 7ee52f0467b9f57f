"""Seed 002: global state (job_state) and component state (node_state).

Writes become visible to other nodes when the writing node completes: `node` sees what
`start` wrote, not what it writes itself until it finishes... and `end` sees both.
"""

from __future__ import annotations

from aetherflow import Worker, node


def _debug(name: str, a: int, job_state) -> dict:
    messages = job_state.get("debug_messages")
    print(f"{name}: debug_messages={messages}")
    job_state.set("debug_messages", [*(messages or []), {name: {"inputs": {"a": a}}}])
    return {"a": a}


@node
def start(a: int, job_state) -> dict:
    return _debug("start", a, job_state)


@node
def middle(start: dict, job_state) -> dict:
    return _debug("node", start["a"], job_state)


@node
def end(middle: dict, job_state) -> dict:
    return _debug("end", middle["a"], job_state)


flow = start.then(middle).then(end).named("debug-messages")

if __name__ == "__main__":
    with Worker(threads=2) as worker:
        job = worker.submit(flow, {"a": 1})
        print("result:", job.result(), "status:", job.status)
        print("final debug_messages:", job.state["debug_messages"])
