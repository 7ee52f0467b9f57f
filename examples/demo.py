"""The core idea in a few seconds: plain functions, injected by name, on a durable worker.

Run with `make demo` (or `python examples/demo.py`). It uses the embedded default store,
a SQLite file at .aetherflow/runs.db, so `aetherflow jobs` shows these runs afterwards.
"""

from __future__ import annotations

import threading
from pathlib import Path

from aetherflow import BaseFlowContext, Worker, node, providers


class WordCounts:
    """A plain dict wrapper, not thread-safe: the framework guards it (shared mode)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, word: str) -> None:
        self.counts[word] = self.counts.get(word, 0) + 1


class DemoContext(BaseFlowContext):
    totals = providers.Singleton(WordCounts)  # shared by every thread, lock-protected
    scratch = providers.ThreadLocalSingleton(list)  # isolated: one per worker thread


@node
def split(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@node
def count_line(line: str, totals: WordCounts, scratch: list, job_state) -> int:
    words = line.lower().split()
    for w in words:
        totals.add(w)  # guarded call: safe from many threads
    scratch.append(threading.current_thread().name)  # this thread's own list
    job_state.apply("words", lambda n: n + len(words), default=0)  # never loses an update
    return len(words)


@node
def summary(count_line: list[int], job_state, totals: WordCounts) -> dict:
    top = sorted(totals.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return {"lines": len(count_line), "words": job_state["words"], "top": top}


flow = split.map(count_line).then(summary).named("word-count")

POEM = """
the flow runs the nodes
the nodes fill their parameters by name
the worker keeps the state and the history
"""

if __name__ == "__main__":
    Path(".aetherflow").mkdir(exist_ok=True)
    with Worker(DemoContext, threads=4, store="sqlite:///.aetherflow/runs.db") as worker:
        job = worker.submit(flow, {"text": POEM})
        result = job.result()
        print("flow:", flow.name)
        print(flow.to_mermaid(), end="")
        print("result:", result)
        print("job state:", job.state)
        runs = worker.store.node_runs(job.id)
        print(
            f"history: job {job.id[:12]} {worker.store.job(job.id).status}, {len(runs)} node runs on threads",
            sorted({r.thread for r in runs}),
        )
    print(f"see it again with: .venv/bin/aetherflow jobs   and   .venv/bin/aetherflow show {job.id[:12]}")
