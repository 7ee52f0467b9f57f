"""Rebuilding a job's scheduler state from what a store recorded, to resume it.

The recorded completions are fed back through the scheduler in the order they happened,
so branch choices, skips, loop counters and map results come out exactly as they were;
committed state is restored with its versions. What is left ready is what still has to
run; a job whose every reachable vertex completed is left ended, with nothing to run.

Taking a job over follows three rules, also here: one owner (a compare-and-set claim),
an answer reaches only the run resuming its suspension, and an input the store kept only
as a secret's mask must be given again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .errors import AetherFlowError, JobClaimedError, MissingInputError, StoreError, UsageError
from .graph import B_ANSWER, Graph, Plan, Vertex, VertexPlan
from .redaction import SECRET_MASK
from .scheduler import JobRun
from .sentinels import UNSET
from .state import StateScope
from .status import JobStatus
from .store.base import Progress, Store
from .store.records import JobRecord
from .store.serialize import restore

JOB_RUNNING = JobStatus.RUNNING


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
        vertex = graph.vertex(node)
        if vertex is None:
            raise StoreError(
                f"Job {progress.job.id} recorded a run of node '{node}', which flow '{flow}' does not have; "
                "resume it with the flow it was started with."
            )
        i = vertex.index
        output = restore(output, _returns(vertex))  # a set stays a set, a datetime a datetime
        if item is not None:
            run.replay_item(node, item, output)  # an item of a mapped node: not run again
        elif i in ready:
            ready.discard(i)
            more, ended = run.completed(i, output)
            ready.update(more)
        # else: a run that the recorded branch choices make unreachable now
        ended = _complete_finished_maps(run, ready) or ended
    return Rebuilt(run, sorted(ready), ended)


def _returns(vertex: Vertex) -> Any:
    annotation = vertex.node.annotation("return")
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


# -- taking a job over: one owner, answers, inputs the store never kept ---------------------


def claim(
    store: Store, progress: Progress, worker: str, lease: float, answered: tuple[str, int | None, Any] | None = None
) -> None:
    """Become the job's one owner, or refuse: a job runs on one live worker at a time."""
    job = progress.job
    if job.status in (JOB_RUNNING, JobStatus.PENDING) and store.owner_alive(job.id, time.time(), lease):
        raise JobClaimedError(
            f"Job {job.id} is {job.status.value} on worker '{job.worker}', which is alive; a job has one owner at a time. "
            "Wait for it to end, or cancel it there; recover() takes it over once that worker is gone."
        )
    if not store.claim(job.id, worker, progress.token, job.status, answered):
        raise JobClaimedError(
            f"Job {job.id} was taken over (resumed or recovered) by someone else while this resume was getting ready; it runs there."
        )


def give_answer(progress: Progress, run: JobRun, answer: Any) -> tuple[str, int | None, Any] | None:
    """Give the run that resumes the suspension its answer; returns what history records of a new one.

    Without ``answer``, an answer given before a crash whose run never ended is given
    again (a secret one was never stored: its node asks again).
    """
    if answer is UNSET:
        pending = progress.answer
        if pending is not None and progress.job.status is JOB_RUNNING:
            answered = run.graph.vertex(pending[0])
            if answered is not None and not answered.node.is_secret("answer"):
                run.give_answer(answered.index, pending[1], pending[2])
        return None
    node, item = progress.suspended, progress.suspended_item
    vertex = run.graph.vertex(node) if node is not None else None
    if vertex is None:
        raise AetherFlowError(
            f"Job {progress.job.id} records no suspended node of this flow to answer; resume it without answer=."
        )
    i = vertex.index
    run.give_answer(i, item, _valid_answer(run.plan.vertices[i], answer))
    return vertex.name, item, SECRET_MASK if vertex.node.is_secret("answer") else answer


def _valid_answer(vp: VertexPlan, answer: Any) -> Any:
    """``answer`` as the suspended node's ``answer`` parameter takes it, or a `UsageError` (the job stays suspended)."""
    binding = next((b for b in vp.bindings if b.kind == B_ANSWER), None)
    if binding is None:
        raise UsageError(
            f"resume(answer=...): node '{vp.name}' ({vp.node.location}) suspended, but it has no `answer` parameter to "
            "receive an answer. Add `answer=None` to its parameters, or resume with inputs={...} instead."
        )
    if binding.check is None:
        return answer
    try:
        return binding.check(answer)
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, or a validator's own error
        secret = vp.node.is_secret("answer")
        raise UsageError(
            f"resume(answer=...): node '{vp.name}' takes its answer as {_annotation_text(vp)}, which "
            f"{'the given (secret) value' if secret else repr(answer)} is not ({'validation failed' if secret else exc}). "
            "The job stays suspended: resume it again with a valid answer."
        ) from None if secret else exc


def _annotation_text(vp: VertexPlan) -> str:
    annotation = vp.node.annotation("answer")
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def refuse_redacted_inputs(plan: Plan, record: JobRecord, given: Mapping[str, Any]) -> None:
    """A secret input was stored as a mask: it must be given again, never run as the mask."""
    missing = {
        k: list(plan.inputs[k].nodes)
        for k in plan.secret_inputs
        if k not in given and record.inputs.get(k) == SECRET_MASK
    }
    if missing:
        hint = "Its value is secret, so the store kept only a mask: give it again with worker.resume(job_id, inputs={...})."
        raise MissingInputError(record.flow, missing, dict.fromkeys(missing, hint))
