"""A job's driver: the one object that changes a job's `JobRun` and its `Job`.

Each job started or resumed on a `Worker` gets one `Driver`. It runs the job's loop: take
a ready vertex, call its node here or hand it to the worker's runner, record the outcome
in the store, tell the scheduler (`JobRun`), which answers with the vertices now ready,
and end the job once nothing is left. Only `JobRun` methods change the `JobRun`, and only
`Job` methods change the `Job`; the driver is the one caller of both.

Where calls run is the runner's business (runner.py): a runner's threads take
``(driver, vertex, item)`` tasks off its queue and call `Driver.step`.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import AetherFlowError, JobCancelledError, JobClaimedError, NodeError, StoreError, Suspend
from .invoke import JobCall, Outcome, acall_node, call_node
from .job import Job, JobSuspendedError
from .runs import RunFacts, RunFields
from .scheduler import JobRun
from .sentinels import UNSET
from .status import JobStatus, NodeStatus
from .store.base import LastRunRecordedError

if TYPE_CHECKING:
    from .events import Hooks
    from .graph import Graph, Plan
    from .runner import Runner
    from .store import Store

log = logging.getLogger("aetherflow.worker")  # the same logger as events.py's

# Enum members read once: in Python 3.11 `NodeStatus.X` costs ~10x a global (EnumType.__getattr__).
COMPLETED, SUSPENDED, FAILED = NodeStatus.COMPLETED, NodeStatus.SUSPENDED, NodeStatus.FAILED
JOB_COMPLETED, JOB_SUSPENDED = JobStatus.COMPLETED, JobStatus.SUSPENDED
JOB_FAILED, JOB_CANCELLED = JobStatus.FAILED, JobStatus.CANCELLED

# A NamedTuple's own __new__ is Python code; tuple's is C (one `RunFacts` is made per job end).
_facts = tuple.__new__

# What was asked of a job before it began (`Driver.asked`): nothing, to stop, or to let it go.
_GO, _CANCEL, _LET_GO = 0, 1, 2


class Crew:
    """What the drivers of one worker share: its store, hooks and runner, and its register of live jobs.

    A driver takes its job off ``active`` when the job ends; once the worker is
    ``closing``, it also wakes the worker, which waits on ``idle`` for ``active`` to empty.
    """

    __slots__ = ("active", "closing", "hooks", "idle", "runner", "store")

    def __init__(self, store: Store, hooks: Hooks, runner: Runner, idle: threading.Condition) -> None:
        self.store = store
        self.hooks = hooks
        self.runner = runner
        self.active: dict[str, Driver] = {}  # the drivers of the jobs running here, by job id
        self.closing = False
        self.idle = idle

    def done(self, job_id: str) -> None:
        """Job ``job_id`` ended here (or stopped here: taken over); a suspended job lives on in the store."""
        self.active.pop(job_id, None)
        if self.closing:
            with self.idle:
                self.idle.notify_all()


class Driver:
    """Drives one job from its first ready vertex to its end (see the module docstring).

    A job of `Worker.map` gets its driver when it is recorded, but its `JobRun` and
    `JobCall` only when a thread begins it (`begin`, from `Starts`): until then the driver
    holds its inputs, and a pending job costs the garbage collector little. Its `Job` never
    leaves the worker (map returns outputs), so when it ends the `Job` lets go of the
    `JobRun` too: a finished job of a long map keeps one object alive, not four.
    """

    __slots__ = ("asked", "begun", "call", "crew", "inputs", "internal", "job", "run")

    run: JobRun
    call: JobCall

    def __init__(
        self, crew: Crew, job: Job, run: JobRun | None, call: JobCall | None, inputs: dict[str, Any] | None = None
    ) -> None:
        self.crew = crew
        self.job = job
        if run is not None and call is not None:
            self.run, self.call = run, call
        self.begun = run is not None
        self.internal = run is None  # a job of `map`: its handle stays in the worker
        self.inputs = inputs  # a pending job's inputs, until it begins
        self.asked = _GO

    # -- starting ------------------------------------------------------------------------------

    def begin(self, graph: Graph, plan: Plan, make_call: Callable[[JobRun], JobCall], thread: str) -> None:
        """Start a pending job here: make its `JobRun` and `JobCall`, then run its first ready vertex on this thread."""
        try:
            run = JobRun(self.job.id, graph, plan, self.inputs or {})
            ready = run.start()
            self.run, self.call, self.inputs = run, make_call(run), None
        except Exception as exc:  # noqa: BLE001 - a bug: the job must still end (logged there), or its result() waits for ever
            self._not_begun(exc)
            return
        self.begun = True
        # Stopped while it waited? `cancel` and `let_go` set `asked` before they look at
        # `begun`, and this thread set `begun` before it looks at `asked`: one of the two
        # sees the other (the GIL orders them), and stopping twice is harmless.
        if self.asked:
            if self.asked == _LET_GO:
                self._forget()
            run.cancel()
        if not ready:  # no source: `start` ends the job at once
            self.start(ready)
            return
        # What `start(ready, first_here=True)` and `step_here` do, inlined: two calls per job
        # fewer (~1.6% of a one-node job's instructions, measured with callgrind).
        job = self.job
        job._began(run)
        if self.crew.hooks:
            self.crew.hooks.emit("job_started", job=job.id, flow=self.call.flow)
        if len(ready) > 1:
            put = self.crew.runner.put
            for i in ready[1:]:
                put((self, i, -1))
        try:
            self.step(ready[0], -1, thread)
        except BaseException as exc:  # Ctrl-C while a node runs here, or a bug: end the job first
            self.fail(ready[0], exc)
            raise

    def _not_begun(self, exc: Exception) -> None:
        """A job that could not begin (a bug) ends failed, in the store too."""
        job = self.job
        log.critical("Could not start job %s", job.id, exc_info=True, extra={"job_id": job.id, "node": None})
        error = AetherFlowError(
            f"internal error in AetherFlow while starting job {job.id}: {type(exc).__name__}: {exc}"
        )
        try:
            self.crew.store.set_job_status(job.id, JOB_FAILED, time.time(), error=str(error))
        except Exception:
            log.error(
                "Could not record the end of job %s", job.id, exc_info=True, extra={"job_id": job.id, "node": None}
            )
        self.crew.done(job.id)
        job._finished(JOB_FAILED, None, error, True)

    def start(self, ready: list[int], first_here: bool = False, ended: bool = False, thread: str | None = None) -> None:
        """Mark the job running and queue its ready vertices (the first runs on this thread when ``first_here``)."""
        job = self.job
        job._began(self.run)
        if self.crew.hooks:
            self.crew.hooks.emit("job_started", job=job.id, flow=self.call.flow)
        if ended or not ready:  # a resumed job whose every reachable vertex had completed
            self.finish()
            return
        put = self.crew.runner.put
        for i in ready[1:] if first_here else ready:
            put((self, i, -1))
        if first_here:
            self.step_here(ready[0], thread)

    def step_here(self, i: int, thread: str | None = None) -> None:
        """Run vertex ``i`` and what follows it on the calling thread (see `Worker.run`)."""
        try:
            self.step(i, -1, thread if thread is not None else threading.current_thread().name)
        except BaseException as exc:  # Ctrl-C while a node runs here, or a bug: end the job first
            self.fail(i, exc)
            raise

    # -- the loop --------------------------------------------------------------------------------

    def step(self, i: int, k: int, thread: str) -> None:
        """Run vertex ``i`` (item ``k`` of a map, or -1), then each first ready successor, until none is left here."""
        run, call = self.run, self.call
        runner = self.crew.runner
        # The per-node loop: a chain runs thousands of times round it, so what it reads
        # per node is bound here (a one-node job pays for each name too: only the hot ones).
        plain, vertices, runs, began = run.graph.plain, run.plan.vertices, run.runs, run.began
        here = runner.calls_here
        while True:
            if run.stopped is not None:
                if run.dropped(i):
                    self.finish()
                return
            if not plain[i]:
                if k < 0 and run.graph.mapped[i]:
                    nxt = self._start_map(i)
                    if nxt is None:
                        return
                    i, k = nxt
                    continue
                if here and vertices[i].node.is_async:
                    runner.run_async(self._acall(i, k))
                    return
            began(i)
            if call.observed:
                self._started(i, k)
            started = time.time()
            if not here:
                runner.send(self, i, k, started)
                return  # the runner calls `returned` when the call comes back
            try:
                outcome: Outcome | BaseException = call_node(
                    call,
                    vertices[i],
                    runs[i],
                    run.map_items[i][k] if k >= 0 else UNSET,  # type: ignore[index]  # k >= 0: start_map set them
                    k if k >= 0 else None,
                    started,
                )
            except (NodeError, Suspend, AetherFlowError) as exc:
                outcome = exc
            ready = self.settle(i, k, started, thread, outcome)
            if not ready:
                return
            if len(ready) > 1:
                put = runner.put
                for r in ready[1:]:
                    put((self, r, -1))
            i, k = ready[0], -1

    def returned(self, i: int, k: int, started: float, thread: str, outcome: Outcome | BaseException) -> None:
        """Settle a call that ran off this loop (the event loop, a Dask worker), and queue what became ready."""
        put = self.crew.runner.put
        for r in self.settle(i, k, started, thread, outcome):
            put((self, r, -1))

    async def _acall(self, i: int, k: int) -> None:
        """An ``async def`` node's call, on the runner's event loop."""
        run, call = self.run, self.call
        run.began(i)
        if call.observed:
            self._started(i, k)
        started = time.time()
        try:
            outcome: Outcome | BaseException = await acall_node(
                call,
                run.plan.vertices[i],
                run.runs[i],
                run.map_items[i][k] if k >= 0 else UNSET,  # type: ignore[index]  # k >= 0: start_map set them
                k if k >= 0 else None,
                started,
            )
        except (NodeError, Suspend, AetherFlowError) as exc:
            outcome = exc
        self.returned(i, k, started, "asyncio", outcome)

    def _start_map(self, i: int) -> tuple[int, int] | None:
        """Split mapped vertex ``i`` into one task per item; returns the (vertex, item) to run here next, if any."""
        run = self.run
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
                self.finish()
            return None
        todo, results = run.start_map(i, items)
        put = self.crew.runner.put
        if not todo:
            ready, ended = run.completed(i, results)
            if ended:
                self.finish()
                return None
            for r in ready[1:]:
                put((self, r, -1))
            return (ready[0], -1) if ready else None
        for k in todo[1:]:
            put((self, i, k))
        return (i, todo[0])

    # -- recording outcomes ------------------------------------------------------------------------

    def settle(self, i: int, k: int, started: float, thread: str, outcome: Outcome | BaseException) -> list[int]:
        """Record a finished call and tell the scheduler; returns the vertices now ready."""
        if not isinstance(outcome, tuple):
            self._settle_unfinished(i, k, started, thread, outcome)
            return []
        output, commits, attempt, started = outcome  # started: of the attempt that won, after any failed ones
        run, call = self.run, self.call
        name = run.graph.names[i]
        fields = (
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
        if k < 0 and run.schedule.terminal[i] and run.completed_last(i, output):
            self.finish(fields)  # the run is recorded with the job's end, in one write
            return []
        try:
            call.record_run(fields)
        except Exception as exc:  # noqa: BLE001 - a completion that cannot be recorded fails the node
            self._settle_unfinished(i, k, started, thread, self._unrecorded_run(name, exc))
            return []
        if call.observed:
            self._observe_completed(name, output, attempt)
        ready, ended = run.item_completed(i, k, output) if k >= 0 else run.completed(i, output)
        if ended:
            self.finish()
        return ready

    def _unrecorded_run(self, name: str, exc: Exception) -> NodeError:
        """The error of a node whose completion the store could not record."""
        error = NodeError(
            f"completed, but its run could not be recorded in {self.crew.store.url}: {type(exc).__name__}: {exc}",
            node=name,
            job_id=self.run.job_id,
        )
        error.__cause__ = exc
        return error

    def _observe_completed(self, name: str, output: Any, attempt: int) -> None:
        """Tell the hooks and the debug log that a node's completion is recorded."""
        job_id = self.run.job_id
        if self.crew.hooks:
            self.crew.hooks.emit("node_completed", job=job_id, node=name, output=output)
        log.debug(
            "Node '%s' completed in job %s",
            name,
            job_id,
            extra={"job_id": job_id, "node": name, "attempt": attempt},
        )

    def _settle_unfinished(self, i: int, k: int, started: float, thread: str, outcome: BaseException) -> None:
        """Record a call that suspended or failed, and stop the job."""
        run = self.run
        if isinstance(outcome, Suspend):
            name = run.graph.names[i]
            item = k if k >= 0 else None
            self._record_unfinished(
                (name, run.runs[i], 1, SUSPENDED, thread, started, time.time(), UNSET, (), outcome.reason, None, item)
            )
            ended = run.suspend(i, outcome.reason)
        else:
            self._record_failed(i, k, started, thread, outcome)
            ended = run.failed(i, outcome)
        if ended:
            self.finish()

    def _record_failed(self, i: int, k: int, started: float, thread: str, outcome: BaseException) -> None:
        """Record a failed run of vertex ``i`` (item ``k``), and tell the hooks and the log."""
        run = self.run
        name = run.graph.names[i]
        attempt = getattr(outcome, "attempt", 1)
        started = getattr(outcome, "attempt_started", started)  # set when earlier attempts failed
        tb = getattr(outcome, "remote_traceback", None) or "".join(
            traceback.format_exception(outcome)
        )  # from a Dask worker: its own
        self._record_unfinished(
            (
                name,
                run.runs[i],
                attempt,
                FAILED,
                thread,
                started,
                time.time(),
                UNSET,
                (),
                str(outcome),
                tb,
                k if k >= 0 else None,
            )
        )
        if self.crew.hooks:
            self.crew.hooks.emit("node_failed", job=run.job_id, node=name, error=outcome)
        log.warning("%s", outcome, extra={"job_id": run.job_id, "node": name, "attempt": attempt})

    def _record_unfinished(self, fields: RunFields) -> None:
        """Record a run that did not complete; if even that fails, the log has it (the job still ends)."""
        try:
            self.call.record_run(fields)  # nowhere once another process took the job over (`let_go`)
        except Exception:
            job_id = self.run.job_id
            log.error(
                "Could not record run of '%s' in job %s",
                fields[0],
                job_id,
                exc_info=True,
                extra={"job_id": job_id, "node": fields[0]},
            )

    def fail(self, i: int, exc: BaseException) -> None:
        """Fail the job after an internal error at vertex ``i``, so its result() does not wait forever."""
        run = self.run
        name = run.graph.names[i]
        if isinstance(exc, Exception):
            error = AetherFlowError(
                f"internal error in AetherFlow while running node '{name}': {type(exc).__name__}: {exc}"
            )
        else:
            error = AetherFlowError(f"interrupted by {type(exc).__name__} while running node '{name}'")
        error.__cause__ = exc
        ends_as = JOB_FAILED if isinstance(exc, Exception) else JOB_CANCELLED  # Ctrl-C cancels (DESIGN §6)
        try:
            if run.failed(i, error, ends_as):
                self.finish()
            elif ends_as is JOB_CANCELLED:  # recorded now, as any cancel, not when the other running calls return
                self.cancel()
        except Exception:  # the job's state is beyond repair; the log has both errors
            log.critical("Could not fail job %s after an internal error", run.job_id, exc_info=True)

    def _started(self, i: int, k: int) -> None:
        self.crew.hooks.node_started(self.run.job_id, self.run.graph.names[i], None if k < 0 else k)

    # -- stopping and ending --------------------------------------------------------------------------

    def cancel(self) -> None:
        """Start nothing more of the job; it ends once its running calls return, but is recorded cancelled now."""
        if self.asked == _GO:
            self.asked = _CANCEL
        if not self.begun:  # a job of `map` waiting for a thread: it ends cancelled as it begins, running nothing
            if self.asked == _CANCEL:  # (not when taken over: the store is another process's now)
                self._record_cancelled()
            return
        ended = self.run.cancel()
        if ended:
            self.finish()
        elif ended is False and not self.call.taken_over:
            # Cancelled is final: the store says so before the running calls return, so a
            # second Ctrl-C that ends the process meanwhile leaves nothing for recover() to run.
            self._record_end(JOB_CANCELLED, UNSET)

    def let_go(self) -> None:
        """Another process claimed the job: start nothing more of it, and record nothing more.

        A worker on another host that was silent past its lease (a long pause, a network
        split) may find its jobs taken over; it notices at its next heartbeat.
        """
        self.asked = _LET_GO
        if self.begun:
            self._forget()
        job_id = self.job.id
        log.warning(
            "Job %s was taken over by another process; stopping it here", job_id, extra={"job_id": job_id, "node": None}
        )
        self.cancel()

    def _record_cancelled(self) -> None:
        """Record a job that never began as cancelled now (cancelled is final: see `cancel`)."""
        job_id = self.job.id
        try:
            self.crew.store.set_job_status(job_id, JOB_CANCELLED, time.time())
        except Exception:
            log.error(
                "Could not record the end of job %s", job_id, exc_info=True, extra={"job_id": job_id, "node": None}
            )

    def _forget(self) -> None:
        call = self.call
        call.taken_over = True
        call.record_run = _forget

    def finish(self, last: RunFields | None = None) -> None:
        """End the job: record its end, tear down its scopes, then hand its outcome to the `Job`.

        ``last`` is the run whose completion ended the job (`JobRun.completed_last`), not
        recorded yet: it is recorded with the job's end, in one write (`Store.end_job`).
        The end is recorded before the teardowns, so a process killed while they run
        leaves a job that is over, not one for `recover` to finish.
        """
        run, job, call = self.run, self.job, self.call
        status = run.final_status()
        crew = self.crew
        if call.taken_over:  # the store is another process's now: record nothing, the run above included
            crew.runner.job_ended(call)
            crew.done(job.id)
            job._finished(
                JOB_CANCELLED,
                None,
                JobClaimedError(
                    f"Job {job.id} was taken over by another process (this one was silent past its lease); it runs there now."
                ),
            )
            return
        output = run.result() if status is JOB_COMPLETED else UNSET
        try:
            status = self._record_end(status, output) if last is None else self._record_last(last, status, output)
        except BaseException as exc:  # Ctrl-C in `run`'s caller while it records: the job must still end here
            self._interrupted(exc)
            raise
        try:
            crew.runner.job_ended(call)  # teardowns end before result() returns
        finally:  # Ctrl-C in `run`'s caller during a teardown: the end is recorded, the job still ends
            self._hand_out(status, output)

    def _hand_out(self, status: JobStatus, output: Any) -> None:
        """Hand a job whose end is recorded (and whose scopes are torn down) to its `Job`."""
        run, job, call, crew = self.run, self.job, self.call, self.crew
        if call.trace is not None:  # OpenTelemetry: end the job's span before result() returns
            call.trace.finished(status.value, run.error, run.suspended)
        crew.active.pop(job.id, None)  # `crew.done`, inlined: a suspended job lives in the store until it is resumed
        if crew.closing:
            with crew.idle:
                crew.idle.notify_all()
        if crew.hooks:
            crew.hooks.emit("job_finished", job=job.id, flow=call.flow, status=status)
        if call.observed:
            log.debug("Job %s of flow '%s' %s", job.id, call.flow, status.value, extra={"job_id": job.id, "node": None})
        if status is JOB_COMPLETED:
            job._finished(status, output, None, self.internal)
        else:
            job._finished(status, None, self._error(status), self.internal)

    def _interrupted(self, exc: BaseException) -> None:
        """End a job whose end was being recorded when ``exc`` (Ctrl-C) cut in, or close() would wait for it for ever.

        The job is recorded cancelled, as the first Ctrl-C records every unfinished job
        (DESIGN), whatever the cut-short write left: never a running job that `recover`
        would run again and complete.
        """
        job, call = self.job, self.call
        error = JobCancelledError(job.id)
        error.__cause__ = exc
        try:
            self._record_end(JOB_CANCELLED, UNSET)
            self.crew.runner.job_ended(call)
            if call.trace is not None:
                call.trace.finished(JOB_CANCELLED.value, error, None)
        finally:
            self.crew.done(job.id)
            job._finished(JOB_CANCELLED, None, error, self.internal)

    def _end_error(self, status: JobStatus) -> str | None:
        """The error text recorded with a job's end."""
        run = self.run
        if status is JOB_SUSPENDED and run.suspended:
            return f"suspended at '{run.suspended[0]}': {run.suspended[1]}"
        return None if run.error is None else str(run.error)

    def _record_end(self, status: JobStatus, output: Any) -> JobStatus:
        """Record the job's end in the store; a completed job whose end cannot be recorded ends failed."""
        store, job_id = self.crew.store, self.run.job_id
        try:
            store.set_job_status(
                job_id, status, time.time(), output=self._stored_output(output), error=self._end_error(status)
            )
        except Exception as exc:  # noqa: BLE001 - logged there, with its traceback
            return self._end_unrecorded(status, exc)
        return status

    def _end_unrecorded(self, status: JobStatus, exc: Exception) -> JobStatus:
        """The status of a job whose end ``exc`` kept from the store: a completed one ends failed."""
        run, job_id = self.run, self.run.job_id
        log.error("Could not record the end of job %s", job_id, exc_info=exc, extra={"job_id": job_id, "node": None})
        if status is not JOB_COMPLETED:
            return status
        cause = StoreError(
            f"Job {job_id} ran to its end, but {self.crew.store.url} could not record that: {type(exc).__name__}: {exc}. "
            "Its completed nodes are recorded; once the store is writable, resume() or recover() records the end without running them again."
        )
        cause.__cause__ = exc
        return run.unrecorded(cause)

    def _record_last(self, last: RunFields, status: JobStatus, output: Any) -> JobStatus:
        """Record the run that ended the job and the job's end together; if they cannot be, that run failed."""
        run, job_id = self.run, self.run.job_id
        name, _, attempt, _, thread, started, _, output_run, _, _, _, item = last  # `RunFields`, named once
        try:
            self.crew.store.end_job(
                job_id,
                status,
                time.time(),
                output=output if self.call.check_value is None else self._stored_output(output),
                error=None if run.error is None and status is not JOB_SUSPENDED else self._end_error(status),
                last_run=_facts(RunFacts, (job_id, *last)),
            )
        except LastRunRecordedError as exc:  # a store that writes them one at a time: only the end is missing
            if self.call.observed:
                self._observe_completed(name, output_run, attempt)
            cause = exc.__cause__
            status = self._end_unrecorded(status, cause if isinstance(cause, Exception) else exc)
            return self._record_end(status, UNSET)  # failed, if the store takes that: memory and store agree
        except Exception as exc:  # noqa: BLE001 - neither landed: the node failed, as when its run alone cannot be recorded
            i = run.graph.index[name]
            error = self._unrecorded_run(name, exc)
            self._record_failed(i, -1 if item is None else item, started, thread, error)
            status = run.last_unrecorded(i, error)
            self._record_end(status, UNSET)
            return status
        if self.call.observed:
            self._observe_completed(name, output_run, attempt)
        return status

    def _stored_output(self, output: Any) -> Any:
        check = self.call.check_value
        if output is UNSET or check is None:
            return output
        try:
            check(output, "(job)", "output")
        except AetherFlowError:
            return repr(output)
        return output

    def _error(self, status: JobStatus) -> BaseException:
        """What ``result()`` raises for a job that ended ``status`` (not completed)."""
        run, job_id = self.run, self.run.job_id
        if status is JOB_FAILED:
            return run.error or AetherFlowError(f"Job {job_id} failed.")
        if status is JOB_CANCELLED:
            return JobCancelledError(job_id)
        node, reason = run.suspended or ("?", "")
        return JobSuspendedError(job_id, node, reason)


class Starts:
    """The jobs of one `Worker.map` recorded but not begun: the runner's threads begin them as they come free.

    One task on the runner's queue per thread it keeps busy (up to ``limit``) stands for
    all of them, rather than a task per job: a thread that begins a job runs its first
    node itself (and each first ready successor, as any task does), then takes the next
    job, with no hand-off through the queue and no thread woken per job.
    """

    __slots__ = ("_lock", "_pending", "_takers", "graph", "limit", "make_call", "plan", "put")

    def __init__(
        self, graph: Graph, plan: Plan, make_call: Callable[[JobRun], JobCall], runner: Runner, limit: int
    ) -> None:
        self.graph = graph
        self.plan = plan
        self.make_call = make_call
        self.put = runner.put
        self.limit = max(1, limit)
        self._pending: deque[Driver] = deque()
        self._takers = 0  # queued or running tasks of this map (changed under _lock)
        self._lock = threading.Lock()

    def add(self, driver: Driver) -> None:
        """A job recorded: begin it as soon as a thread is free."""
        self._pending.append(driver)
        if self._takers < self.limit:  # read without the lock: most jobs of a map find every taker at work
            self._wake()

    def _wake(self) -> None:
        """Queue one more taker, unless ``limit`` are at work."""
        with self._lock:
            wake = self._takers < self.limit
            if wake:
                self._takers += 1
        if wake:
            self.put((self, 0, -1))

    def step(self, vertex: int, item: int, thread: str) -> None:
        """A runner thread's turn: begin pending jobs until none is left."""
        pending, graph, plan, make_call = self._pending, self.graph, self.plan, self.make_call
        while True:
            try:
                driver = pending.popleft()  # atomic: each job is begun once
            except IndexError:
                with self._lock:
                    self._takers -= 1
                # `add` appends before it counts the takers, and this thread counted itself
                # out before it looks again: a job added meanwhile is seen by one of the two.
                if not pending:
                    return
                with self._lock:
                    if self._takers >= self.limit:
                        return
                    self._takers += 1
                continue
            try:
                driver.begin(graph, plan, make_call, thread)
            except Exception:  # the job ended failed (`step_here`); the others must still begin
                log.critical("AetherFlow internal error while running a node", exc_info=True)

    def fail(self, vertex: int, exc: BaseException) -> None:
        """A taker stopped by something no job caught (the job it ran ended with it): another takes its place."""
        with self._lock:
            self._takers -= 1
        if self._pending:
            self._wake()


def recorded_job(job: Job, output: Any) -> Job:
    """A job the store records as completed: resuming it runs nothing and writes nothing."""
    job._finished(JOB_COMPLETED, output, None)
    return job


def _forget(_: object) -> None:
    """Where the runs of a job taken over by another process go: nowhere."""
