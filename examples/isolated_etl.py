"""Seed 004, isolation mode: a per-thread ETL where each worker thread has its own state.

`ThreadLocalSingleton` gives every worker thread its own `dict` and parser: no locks, no
races, and the framework tears them down when the worker closes.
"""

from __future__ import annotations

import sys
import threading

from aetherflow import BaseFlowContext, Worker, node, providers


class Parser:
    def __init__(self) -> None:
        self.thread = threading.current_thread().name
        self.parsed = 0

    def parse(self, record: str) -> dict[str, str]:
        self.parsed += 1
        name, _, city = record.partition(",")
        return {"name": name.strip().title(), "city": city.strip().upper()}


class IsolatedContext(BaseFlowContext):
    state = providers.ThreadLocalSingleton(dict)
    parser = providers.ThreadLocalSingleton(Parser)


@node
def extract(batch: int, size: int) -> list[str]:
    return [f"user{batch}_{i}, city{i % 3}" for i in range(size)]


@node
def transform(extract: list[str], parser: Parser, state: dict) -> list[dict[str, str]]:
    state["batches"] = state.get("batches", 0) + 1  # this thread's own dict: no lock needed
    return [parser.parse(r) for r in extract]


@node
def load(transform: list[dict[str, str]], parser: Parser) -> dict[str, object]:
    return {"rows": len(transform), "parsed_on": parser.thread}


etl = extract.then(transform).then(load).named("isolated-etl")

if __name__ == "__main__":
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with Worker(IsolatedContext, threads=4) as worker:
        results = worker.map(etl, [{"batch": b, "size": 50} for b in range(batches)])
    threads = sorted({r["parsed_on"] for r in results})
    print(
        f"{len(results)} batches, {sum(r['rows'] for r in results)} rows, parsed on {len(threads)} threads: {threads}"
    )
