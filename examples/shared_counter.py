"""Seed 004, shared mode: one counter for all threads, protected by the framework's lock.

`Counter.add` reads then writes: unguarded, eight threads lose updates. As a `Singleton`
the node receives a guarded proxy, so every call holds the instance's lock; `locked()`
holds it across several calls.
"""

from __future__ import annotations

import sys
import time

from aetherflow import BaseFlowContext, Worker, locked, node, providers


class Counter:
    def __init__(self) -> None:
        self.value = 0
        self.by_kind: dict[str, int] = {}

    def add(self, n: int = 1) -> int:
        current = self.value
        time.sleep(0)  # invite a thread switch mid-update, to make races visible
        self.value = current + n
        return self.value


class SharedContext(BaseFlowContext):
    counter = providers.Singleton(Counter)


@node
def hit(i: int, counter: Counter) -> int:
    for _ in range(100):
        counter.add()
    with locked(counter) as raw:  # a compound step: read, compute, write
        raw.by_kind["even" if i % 2 == 0 else "odd"] = raw.by_kind.get("even" if i % 2 == 0 else "odd", 0) + 1
    return i


if __name__ == "__main__":
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    ctx = SharedContext()
    with Worker(ctx, threads=8) as worker:
        worker.map(hit, [{"i": i} for i in range(jobs)])
    counter = ctx.counter()
    print(
        f"{jobs} jobs x 100 adds on 8 threads: counter = {counter.value} (expected {jobs * 100}), by kind {counter.by_kind}"
    )
    assert counter.value == jobs * 100
