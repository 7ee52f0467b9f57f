"""Rebuilding a job's scheduler state from what a store recorded, to resume it.

The recorded completions are fed back through the scheduler in the order they happened,
so branch choices, skips, loop counters and map results come out exactly as they were;
committed state is restored with its versions. What is left ready is what still has to
run; a job whose every reachable vertex completed is left ended, with nothing to run.
"""

from __future__ import annotations

from typing import Any

from .errors import StoreError
from .graph import Graph, Plan
from .scheduler import JobRun
from .sentinels import UNSET
from .state import StateScope
from .store.base import Progress
from .store.serialize import restore


class Rebuilt:
    """A `JobRun` at the point the recorded job reached, the vertices to run next, and whether it ended."""

    __slots__ = ("ended", "ready", "run")

    def __init__(self, run: JobRun, ready: list[int], ended: bool) -> None:
        self.run = run
        self.ready = ready
        self.ended = ended


def rebuild(progress: Progress, graph: Graph, plan: Plan, inputs: dict[str, Any], flow: str) -> Rebuilt:
    """Replay ``progress`` through a fresh `JobRun` of ``graph``."""
    run = JobRun(progress.job.id, graph, plan, inputs)
    for (scope, namespace), entries in progress.state.items():
        space = run.job_space if scope == StateScope.JOB.value else run.node_space(namespace)
        space.restore(entries)
    ready = set(run.start())
    ended = _complete_finished_maps(run, ready)
    for node, item, output in progress.completed:
        if node not in graph.index:
            raise StoreError(
                f"Job {progress.job.id} recorded a run of node '{node}', which flow '{flow}' does not have; "
                "resume it with the flow it was started with."
            )
        i = graph.index[node]
        output = restore(output, _returns(graph, i))  # a set stays a set, a datetime a datetime
        if item is not None:
            run.replay_item(node, item, output)  # an item of a mapped node: not run again
        elif i in ready:
            ready.discard(i)
            more, ended = run.completed(i, output)
            ready.update(more)
        # else: a run that the recorded branch choices make unreachable now
        ended = _complete_finished_maps(run, ready) or ended
    return Rebuilt(run, sorted(ready), ended)


def _returns(graph: Graph, i: int) -> Any:
    annotation = graph.nodes[i].annotation("return")
    return None if annotation is UNSET else annotation


def _complete_finished_maps(run: JobRun, ready: set[int]) -> bool:
    """Complete each ready mapped vertex whose every item was replayed (also a map over nothing).

    A mapped vertex records its items, never itself: without this, what ran after it
    would look unreachable and run again.
    """
    ended = False
    progressed = True
    while progressed:
        progressed = False
        for i in sorted(ready):
            results = run.replayed_map(i)
            if results is not None:
                ready.discard(i)
                more, ended = run.completed(i, results)
                ready.update(more)
                progressed = True
    return ended
