"""`Job`: the handle `worker.submit` returns — live status, result, outputs and state."""

from __future__ import annotations

import _thread
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .errors import AetherFlowError
from .status import JobStatus, NodeStatus

_PENDING, _RUNNING = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
)  # read once: `JobStatus.X` is slow in Python 3.11 (EnumType.__getattr__)

if TYPE_CHECKING:
    from .flow import Flow
    from .scheduler import JobRun

# Guards the making of a job's waiter lock (waiters are few, and rarely early): one lock for
# every job, since a lock per job would be one more object per job for the GC to walk.
_waiters = _thread.allocate_lock()


class JobSuspendedError(AetherFlowError):
    """``result()`` of a job paused by `Suspend`; resume it with ``worker.resume(job_id, answer=...)``."""

    def __init__(self, job_id: str, node: str, reason: str) -> None:
        self.job_id = job_id
        self.node = node
        self.reason = reason
        super().__init__(
            f"Job {job_id} is suspended at node '{node}'"
            + (f": {reason}" if reason else "")
            + f". Resume it with worker.resume('{job_id}', answer=...) (or inputs={{...}} to add job inputs)."
        )


class Job:
    """One run of a flow on a worker.

    >>> job = worker.submit(flow, {"path": "users.csv"})
    >>> job.status            # JobStatus.RUNNING, then "completed" (a str enum)
    >>> job.result(timeout=5)
    """

    # Completion is a flag, plus a lock made only when someone waits before the job ends:
    # a `Future` (a Condition inside) costs more to build than a trivial node, most jobs
    # are never awaited by asyncio, and many end before anyone asks for their result.
    __slots__ = (
        "__weakref__",
        "_ended",
        "_error",
        "_future",
        "_on_cancel",
        "_status",
        "_value",
        "_waiter",
        "flow",
        "id",
        "run",
    )

    def __init__(self, job_id: str, flow: Flow, run: JobRun | None, on_cancel: Callable[[Job], None]) -> None:
        self.id = job_id
        self._on_cancel = on_cancel
        self.flow = flow
        self.run = run  # None until the job starts (a job of `map` waiting for a thread)
        self._status = _PENDING
        self._ended = False
        self._waiter: _thread.LockType | None = None  # held until the job ends, once someone waits
        self._value: Any = None
        self._error: BaseException | None = None
        self._future: Future[Any] | None = None

    @property
    def status(self) -> JobStatus:
        return self._status

    def result(self, timeout: float | None = None) -> Any:
        """What ``flow.run`` would return; raises the job's error. Waits up to ``timeout`` s."""
        if not self._ended and not self._wait(timeout):
            raise TimeoutError(f"Job {self.id} did not finish within {timeout} s (status: {self._status.value}).")
        if self._error is not None:
            raise self._error
        return self._value

    def done(self) -> bool:
        return self._ended

    def _wait(self, timeout: float | None) -> bool:
        with _waiters:  # waiters of a job share one lock: make it once
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = _thread.allocate_lock()
                waiter.acquire()
        # `_finished` sets `_ended` before it looks for a waiter, and this thread set the
        # waiter before it looks at `_ended`: one of the two sees the other (the GIL
        # orders them), so a job that ends now is never missed.
        if self._ended:
            return True
        if not waiter.acquire(True, -1 if timeout is None else timeout):
            return False
        waiter.release()  # the next waiter's turn
        return True

    @property
    def future(self) -> Future[Any]:
        """A `concurrent.futures.Future` of the result (for asyncio: ``asyncio.wrap_future``)."""
        if self._future is None:
            self._future = Future()
            if self.done():
                self._settle_future()
        return self._future

    # -- called by the job's driver (driver.py), the one code that changes a job --------------

    def _began(self, run: JobRun) -> None:
        self.run = run
        self._status = _RUNNING

    def _finished(self, status: JobStatus, value: Any, error: BaseException | None, drop_run: bool = False) -> None:
        """Called once by the job's driver when the job ends (after its teardowns).

        ``drop_run``: nobody outside the worker holds this job (one of `Worker.map`'s), so
        nobody reads its outputs or state; letting go of its `JobRun` spares the GC.
        """
        if drop_run:
            self.run = None
        self._status = status
        self._value, self._error = value, error
        self._ended = True
        waiter = self._waiter
        if waiter is not None:
            waiter.release()
        if self._future is not None:
            self._settle_future()

    def _cancelled_while_suspended(self) -> None:
        """A suspended job (already ended, its result the suspension) was cancelled: it will never resume."""
        self._status = JobStatus.CANCELLED

    def _settle_future(self) -> None:
        future = self._future
        if future is None or future.done():
            return
        try:
            if self._error is not None:
                future.set_exception(self._error)
            else:
                future.set_result(self._value)
        except Exception:  # noqa: BLE001 - the other thread set it in the same instant
            pass

    @property
    def outputs(self) -> dict[str, Any]:
        """``{node: output}`` of every node that completed so far."""
        run = self.run
        if run is None:
            return {}
        with run.lock:
            return dict(run.outputs)

    @property
    def state(self) -> dict[str, Any]:
        """The job's committed ``job_state`` as a plain dict."""
        run = self.run
        return run.job_space.snapshot() if run is not None else {}

    def node_state(self, node: str) -> dict[str, Any]:
        """The committed ``node_state`` of one node in this job, as a plain dict."""
        graph, run = self.flow.graph, self.run  # read once: a finished map job lets go of its run
        space = run.node_spaces.get(node) if run is not None else None
        if space is None and node not in graph.index:
            raise KeyError(f"flow '{self.flow.name}' has no node '{node}' (nodes: {', '.join(graph.names)})")
        return space.snapshot() if space is not None else {}

    @property
    def node_statuses(self) -> dict[str, NodeStatus]:
        run = self.run
        if run is None:
            return dict.fromkeys(self.flow.graph.names, NodeStatus.PENDING)
        return dict(zip(run.graph.names, run.status, strict=True))

    def cancel(self) -> None:
        """Stop the job: nodes not started yet never start; running ones finish."""
        self._on_cancel(self)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.flow.name} {self._status.value}>"
