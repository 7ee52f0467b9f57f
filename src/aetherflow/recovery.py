"""Rebuilding a job's scheduler state from what a store recorded, to resume it.

The recorded completions are fed back through the scheduler in the order they happened,
so branch choices, skips and loop counters come out exactly as they were; committed
state is restored with its versions. What is left ready is what still has to run.
"""

from __future__ import annotations

from typing import Any

from .errors import StoreError
from .graph import Graph, Plan
from .scheduler import JobRun
from .state import StateScope
from .store.base import Progress


def rebuild(progress: Progress, graph: Graph, plan: Plan, inputs: dict[str, Any], flow: str) -> tuple[JobRun, list[int]]:
    """A `JobRun` at the point the recorded job reached, and the vertices to run next."""
    run = JobRun(progress.job.id, graph, plan, inputs)
    for (scope, namespace), entries in progress.state.items():
        space = run.job_space if scope == StateScope.JOB.value else run.node_space(namespace)
        space.restore(entries)
    ready = set(run.start())
    for node, item, output in progress.completed:
        if node not in graph.index:
            raise StoreError(
                f"Job {progress.job.id} recorded a run of node '{node}', which flow '{flow}' does not have; "
                "resume it with the flow it was started with."
            )
        if item is not None:
            run.replay_item(node, item, output)  # an item of a mapped node: not run again
            continue
        i = graph.index[node]
        if i not in ready:
            continue  # a run that the recorded branch choices make unreachable now
        ready.discard(i)
        more, _ = run.completed(i, output)
        ready.update(more)
    return run, sorted(ready)
