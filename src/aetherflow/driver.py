"""Driving jobs: the per-node loop, recording each outcome, advancing the scheduler, ending jobs.

Moved out of worker.py unchanged (a mixin of `Worker` for now); the next step makes it one
driver object per job.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import TYPE_CHECKING, Any

from .errors import AetherFlowError, JobCancelledError, JobClaimedError, NodeError, StoreError, Suspend
from .invoke import JobCall, Outcome, acall_node, call_node
from .job import Job, JobSuspendedError
from .runs import RunFacts
from .sentinels import UNSET
from .status import JobStatus, NodeStatus

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from queue import SimpleQueue

    from .events import Hooks
    from .store import Store

log = logging.getLogger("aetherflow.worker")  # the same logger as events.py's

# Enum members read once: in Python 3.11 `NodeStatus.X` costs ~10x a global (EnumType.__getattr__).
RUNNING, COMPLETED = NodeStatus.RUNNING, NodeStatus.COMPLETED
JOB_RUNNING, JOB_COMPLETED, JOB_SUSPENDED = JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.SUSPENDED

_Task = tuple[JobCall, Job, int, int]  # (call, job, vertex, item index or -1)


class JobDriving:
    """The part of `Worker` that drives its jobs."""

    # Provided by `Worker`.
    store: Store
    _queue: SimpleQueue[Any]
    _hooks: Hooks
    _active: dict[str, tuple[Job, JobCall]]
    _closed: bool
    _lock: threading.Lock
    _idle: threading.Condition
    _check_value: Callable[[Any, str, str], None] | None
    _calls_here: bool

    id: str
    if TYPE_CHECKING:  # provided by `LocalRunning` (and `DaskWorker`)

        def _send_node(self, call: JobCall, job: Job, i: int, k: int, started: float) -> None: ...
        def _run_async(self, task: _Task) -> None: ...

    def _execute(self, task: Any, thread: str) -> None:
        call, job, i, k = task
        run = job.run
        # The per-node loop: a chain runs thousands of times round it, so what it reads
        # per node is bound here (a one-node job pays for each name too: only the hot ones).
        plain, vertices, status, runs = run.graph.plain, run.plan.vertices, run.status, run.runs
        here = self._calls_here
        # Tracing's one test, per task (a chain's nodes share it): a traced job calls the same loop with a span per attempt (tracing.py).
        call_fn = call_node if call.trace is None else call.trace.call_node
        while True:
            if run.stopped is not None:
                if run.dropped(i):
                    self._finish(job, call)
                return
            if not plain[i]:
                if k < 0 and run.graph.mapped[i]:
                    nxt = self._start_map(call, job, i)
                    if nxt is None:
                        return
                    call, job, i, k = nxt
                    continue
                if here and vertices[i].node.is_async:
                    self._run_async((call, job, i, k))
                    return
            status[i] = RUNNING
            if call.observed:
                self._started(job, i, k)
            started = time.time()
            if not here:
                self._send_node(call, job, i, k, started)
                return  # `DaskWorker` continues when its task comes back
            try:
                outcome: Outcome | BaseException = call_fn(
                    call, vertices[i], runs[i], run.map_items[i][k] if k >= 0 else UNSET, k if k >= 0 else None, started
                )
            except (NodeError, Suspend, AetherFlowError) as exc:
                outcome = exc
            ready = self._settle(call, job, i, k, started, thread, outcome)
            if not ready:
                return
            if len(ready) > 1:
                for r in ready[1:]:
                    self._queue.put((call, job, r, -1))
            i, k = ready[0], -1

    def _continue(
        self, call: JobCall, job: Job, i: int, k: int, started: float, thread: str, outcome: Outcome | BaseException
    ) -> None:
        """Settle a call that finished off the worker's threads, and queue what became ready."""
        for r in self._settle(call, job, i, k, started, thread, outcome):
            self._queue.put((call, job, r, -1))

    def _start_map(self, call: JobCall, job: Job, i: int) -> _Task | None:
        run = job.run
        source = run.graph.names[run.graph.explicit[i][0]]
        try:
            items = list(run.outputs[source])
        except TypeError as exc:
            err = NodeError(
                f"is mapped over '{source}', whose output {type(run.outputs[source]).__name__} is not iterable; return a list.",
                node=run.graph.names[i],
                job_id=run.job_id,
            )
            err.__cause__ = exc
            if run.failed(i, err):
                self._finish(job, call)
            return None
        run.map_items[i] = items
        todo, results = run.start_map(i, items)
        if not todo:
            ready, ended = run.completed(i, results)
            if ended:
                self._finish(job, call)
                return None
            for r in ready[1:]:
                self._queue.put((call, job, r, -1))
            return (call, job, ready[0], -1) if ready else None
        for k in todo[1:]:
            self._queue.put((call, job, i, k))
        return (call, job, i, todo[0])

    def _settle(
        self, call: JobCall, job: Job, i: int, k: int, started: float, thread: str, outcome: Outcome | BaseException
    ) -> list[int]:
        """Record a finished call and tell the scheduler; returns the vertices now ready."""
        if not isinstance(outcome, tuple):
            self._settle_unfinished(call, job, i, k, started, thread, outcome)
            return []
        output, commits, attempt, started = outcome  # started: of the attempt that won, after any failed ones
        run = job.run
        name = run.graph.names[i]
        try:
            call.record_run(
                (
                    name,
                    run.runs[i],
                    attempt,
                    COMPLETED,
                    thread,
                    started,
                    time.time(),
                    output,
                    commits,
                    None,
                    None,
                    k if k >= 0 else None,
                )
            )
        except Exception as exc:  # noqa: BLE001 - a completion that cannot be recorded fails the node
            error = NodeError(
                f"completed, but its run could not be recorded in {self.store.url}: {type(exc).__name__}: {exc}",
                node=name,
                job_id=run.job_id,
            )
            error.__cause__ = exc
            self._settle_unfinished(call, job, i, k, started, thread, error)
            return []
        if call.observed:
            if self._hooks:
                self._hooks.emit("node_completed", job=run.job_id, node=name, output=output)
            log.debug(
                "Node '%s' completed in job %s",
                name,
                run.job_id,
                extra={"job_id": run.job_id, "node": name, "attempt": attempt},
            )
        ready, ended = run.item_completed(i, k, output) if k >= 0 else run.completed(i, output)
        if ended:
            self._finish(job, call)
        return ready

    def _settle_unfinished(
        self, call: JobCall, job: Job, i: int, k: int, started: float, thread: str, outcome: BaseException
    ) -> None:
        """Record a call that suspended or failed, and stop the job."""
        run = job.run
        name = run.graph.names[i]
        item = k if k >= 0 else None
        record = self._record if not call.taken_over else _forget  # another process owns the job now
        if isinstance(outcome, Suspend):
            record(
                RunFacts(
                    run.job_id,
                    name,
                    run.runs[i],
                    1,
                    NodeStatus.SUSPENDED,
                    thread,
                    started,
                    time.time(),
                    error=outcome.reason,
                    item=item,
                )
            )
            ended = run.suspend(i, outcome.reason)
        else:
            attempt = getattr(outcome, "attempt", 1)
            started = getattr(outcome, "attempt_started", started)  # set when earlier attempts failed
            tb = getattr(outcome, "remote_traceback", None) or "".join(
                traceback.format_exception(outcome)
            )  # from a Dask worker: its own
            record(
                RunFacts(
                    run.job_id,
                    name,
                    run.runs[i],
                    attempt,
                    NodeStatus.FAILED,
                    thread,
                    started,
                    time.time(),
                    error=str(outcome),
                    traceback=tb,
                    item=item,
                )
            )
            if self._hooks:
                self._hooks.emit("node_failed", job=run.job_id, node=name, error=outcome)
            log.warning("%s", outcome, extra={"job_id": run.job_id, "node": name, "attempt": attempt})
            ended = run.failed(i, outcome)
        if ended:
            self._finish(job, call)

    def _fail_task(self, task: Any, exc: BaseException) -> None:
        """Fail the job of a task that hit an internal error, so its result() does not wait forever."""
        if not (isinstance(task, tuple) and len(task) == 4):
            return
        call, job, i, _ = task
        name = job.run.graph.names[i]
        if isinstance(exc, Exception):
            error = AetherFlowError(
                f"internal error in AetherFlow while running node '{name}': {type(exc).__name__}: {exc}"
            )
        else:
            error = AetherFlowError(f"interrupted by {type(exc).__name__} while running node '{name}'")
        error.__cause__ = exc
        ends_as = JobStatus.FAILED if isinstance(exc, Exception) else JobStatus.CANCELLED  # Ctrl-C cancels (DESIGN §6)
        try:
            if job.run.failed(i, error, ends_as):
                self._finish(job, call)
        except Exception:  # the job's state is beyond repair; the log has both errors
            log.critical("Could not fail job %s after an internal error", job.id, exc_info=True)

    def _record(self, facts: RunFacts) -> None:
        """Record a run that did not complete; if even that fails, the log has it."""
        try:
            self.store.record_run(facts)
        except Exception:  # the job still ends; the store is what failed
            log.error(
                "Could not record run of '%s' in job %s",
                facts.node,
                facts.job_id,
                exc_info=True,
                extra={"job_id": facts.job_id, "node": facts.node},
            )

    async def _acall(self, task: _Task) -> None:
        call, job, i, k = task
        run = job.run
        run.began(i)
        if call.observed:
            self._started(job, i, k)
        started = time.time()
        try:
            call_async = (
                acall_node if call.trace is None else call.trace.acall_node
            )  # traced: a span per attempt (tracing.py)
            outcome: Outcome | BaseException = await call_async(
                call,
                run.plan.vertices[i],
                run.runs[i],
                run.map_items[i][k] if k >= 0 else UNSET,
                k if k >= 0 else None,
                started,
            )
        except (NodeError, Suspend, AetherFlowError) as exc:
            outcome = exc
        self._continue(call, job, i, k, started, "asyncio", outcome)

    # -- finishing jobs -------------------------------------------------------------------------

    def _finish(self, job: Job, call: JobCall) -> None:
        run = job.run
        status = run.final_status()
        self._close_job_scopes(call)  # teardowns end before result() returns
        if call.taken_over:
            self._active.pop(job.id, None)
            job._status = JobStatus.CANCELLED
            job._finished(
                None,
                JobClaimedError(
                    f"Job {job.id} was taken over by another process (this one was silent past its lease); it runs there now."
                ),
            )
            return
        output = run.result() if status is JOB_COMPLETED else UNSET
        error = None if run.error is None else str(run.error)
        if status is JOB_SUSPENDED and run.suspended:
            error = f"suspended at '{run.suspended[0]}': {run.suspended[1]}"
        try:
            self.store.set_job_status(job.id, status, time.time(), output=self._stored_output(output), error=error)
        except Exception as exc:
            log.error(
                "Could not record the end of job %s", job.id, exc_info=True, extra={"job_id": job.id, "node": None}
            )
            if status is JOB_COMPLETED:
                status, output = JobStatus.FAILED, UNSET
                run.error = StoreError(
                    f"Job {job.id} ran to its end, but {self.store.url} could not record that: {type(exc).__name__}: {exc}. "
                    "Its completed nodes are recorded; once the store is writable, resume() or recover() records the end without running them again."
                )
                run.error.__cause__ = exc
        job._status = status
        if call.trace is not None:  # OpenTelemetry: end the job's span before result() returns
            call.trace.finished(status.value, run.error, run.suspended)
        self._active.pop(job.id, None)  # a suspended job lives in the store until it is resumed
        if self._closed:
            with self._lock:
                self._idle.notify_all()
        if self._hooks:
            self._hooks.emit("job_finished", job=job.id, flow=call.flow, status=status)
        if call.observed:
            log.debug("Job %s of flow '%s' %s", job.id, call.flow, status.value, extra={"job_id": job.id, "node": None})
        if status is JOB_COMPLETED:
            job._finished(output, None)
        elif status is JobStatus.FAILED:
            job._finished(None, run.error or AetherFlowError(f"Job {job.id} failed."))
        elif status is JobStatus.CANCELLED:
            job._finished(None, JobCancelledError(job.id))
        else:
            node, reason = run.suspended or ("?", "")
            job._finished(None, JobSuspendedError(job.id, node, reason))

    def _close_job_scopes(self, call: JobCall) -> None:
        call.scopes.close()

    def _stored_output(self, output: Any) -> Any:
        if output is UNSET or self._check_value is None:
            return output
        try:
            self._check_value(output, "(job)", "output")
        except AetherFlowError:
            return repr(output)
        return output

    def _cancel(self, job: Job) -> None:
        if job.status is JOB_SUSPENDED:  # nothing runs: it just will never be resumed
            progress = self.store.progress(job.id)  # unless it was resumed meanwhile: then the resume wins
            if progress.job.status is JOB_SUSPENDED and self.store.claim(
                job.id, self.id, progress.token, JOB_SUSPENDED, becomes=JobStatus.CANCELLED
            ):
                self.store.set_job_status(job.id, JobStatus.CANCELLED, time.time(), error="cancelled while suspended")
                job._status = JobStatus.CANCELLED
            return
        entry = self._active.get(job.id)
        if entry is not None and entry[0] is job and job.run.cancel():
            self._finish(job, entry[1])

    def _started(self, job: Job, i: int, k: int) -> None:
        self._hooks.node_started(job.id, job.run.graph.names[i], None if k < 0 else k)

    def _let_go(self, job_id: str) -> None:
        """Stop a job another process has claimed: start nothing more of it, and record nothing more.

        A worker on another host that was silent past its lease (a long pause, a network
        split) may find its jobs taken over; it notices at its next heartbeat.
        """
        entry = self._active.get(job_id)
        if entry is None:
            return
        job, call = entry
        call.taken_over = True
        call.record_run = _forget
        log.warning(
            "Job %s was taken over by another process; stopping it here", job_id, extra={"job_id": job_id, "node": None}
        )
        if job.run.cancel():
            self._finish(job, call)


def _forget(_: object) -> None:
    """Where the runs of a job taken over by another process go: nowhere."""
