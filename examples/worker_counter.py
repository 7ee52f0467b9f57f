"""Seed 000: a worker-wide counter across jobs (`WorkerState.get_routine_state`).

`worker_state` belongs to one node of one flow and lives as long as the worker: every job
adds to it, commits never lose an update, and it is read from outside as a plain dict.
"""

from __future__ import annotations

from aetherflow import Worker, node


@node
def count_messages(messages: list[str], worker_state) -> int:
    worker_state.apply("count", lambda n: n + len(messages), default=0)
    worker_state.apply("jobs", lambda n: n + 1, default=0)
    return len(messages)


flow = count_messages.named("counter")

if __name__ == "__main__":
    with Worker(threads=4) as worker:
        worker.map(flow, [{"messages": ["m"] * (i % 5)} for i in range(100)])
        print("worker_state of counter/count_messages:", worker.worker_state("counter", "count_messages"))
