"""The ExecutionContext a node sees while it runs (execution.py)."""

from __future__ import annotations

from aetherflow import (
    current_execution,
    node,
)


def test_execution_context_is_set_while_a_node_runs(worker) -> None:
    seen = []

    @node
    def where(execution) -> str:
        seen.append((execution, current_execution()))
        return execution.node

    job = worker.submit(where.named("places"))
    assert job.result() == "where"
    injected, current = seen[0]
    assert injected is current
    assert (injected.flow, injected.job_id, injected.worker_id, injected.iteration, injected.attempt) == (
        "places",
        job.id,
        worker.id,
        1,
        1,
    )
    assert current_execution() is None
