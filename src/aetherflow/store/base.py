"""The `Store` every backend implements: what the worker records, and what users query."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..runs import RunFacts, RunFields
from ..sentinels import UNSET
from ..status import JobStatus
from .records import EventRecord, FlowStats, JobRecord, NodeRunRecord, StateRecord, WorkerRecord


@dataclass
class Progress:
    """What a resumed job starts from: its completed runs in order, and its committed state."""

    job: JobRecord
    completed: list[tuple[str, int | None, Any]]  # (node, item or None, output), in completion order
    state: dict[tuple[str, str], dict[str, tuple[Any, int]]] = field(default_factory=dict)
    suspended: str | None = None  # the node of the last suspended run
    suspended_item: int | None = None  # its item, when it is a mapped node's
    answer: tuple[str, int | None, Any] | None = None  # (node, item, answer) given to a run that never ended
    token: str | None = None  # the token of the claim that made the job's owner its owner (None: never claimed)


def pending_answer(
    answered: tuple[float, str, int | None, Any] | None, ended: dict[tuple[str, int | None], float]
) -> tuple[str, int | None, Any] | None:
    """The last recorded answer, unless a run of the node (item) it answered ended since.

    ``answered`` is ``(ts, node, item, answer)``; ``ended`` maps (node, item) to the end of
    its last run. An answer whose run never ended was cut short by a crash: the run that
    resumes it gets the answer again.
    """
    if answered is None:
        return None
    ts, node, item, value = answered
    return None if ended.get((node, item), float("-inf")) >= ts else (node, item, value)


class LastRunRecordedError(Exception):
    """`Store.end_job` recorded the run that ended a job, but not the job's end (``__cause__`` says why)."""


class Store(ABC):
    """Records jobs, node runs, state commits and events; answers history queries."""

    persistent = False  # True when values leave the process (they are then stored as JSON)
    url = "memory://"

    # -- written by workers -----------------------------------------------------------

    @abstractmethod
    def create_job(
        self,
        job_id: str,
        flow: str,
        inputs: dict[str, Any],
        worker: str,
        ts: float,
        *,
        running: bool = False,
        process: tuple[Any, ...] | None = None,
    ) -> None:
        """Record a new job (``running=True``: its nodes start at once, so it is recorded as running).

        ``process`` is the owning process as ``(pid, host)`` or ``(pid, host, start)``: this
        one unless said otherwise.
        """

    @abstractmethod
    def set_job_status(
        self, job_id: str, status: JobStatus, ts: float, *, output: Any = UNSET, error: str | None = None
    ) -> None: ...

    @abstractmethod
    def record_run(self, facts: RunFacts) -> None: ...

    def end_job(
        self,
        job_id: str,
        status: JobStatus,
        ts: float,
        *,
        output: Any = UNSET,
        error: str | None = None,
        last_run: RunFacts | None = None,
    ) -> None:
        """Record the run that ended a job (if any) and the job's end, in one write.

        The same records as `record_run` then `set_job_status`; a SQL store writes them in
        one transaction, so both land or neither does (and its caller hears why), and a
        job whose last node completed costs one commit fewer.
        """
        if last_run is None:
            self.set_job_status(job_id, status, ts, output=output, error=error)
            return
        self.record_run(last_run)
        try:
            self.set_job_status(job_id, status, ts, output=output, error=error)
        except Exception as exc:
            # Written one at a time here: the caller must not record that run again, as failed.
            raise LastRunRecordedError(f"job {job_id}'s last run was recorded, its end was not") from exc

    def run_recorder(self, job_id: str) -> Callable[[RunFields], None]:
        """Where the worker records the completed runs of one job, as `RunFields`.

        By default it builds the `RunFacts` and calls `record_run`; a store may hand out
        something cheaper (the memory store: the job's list ``extend``, building nothing).
        """
        record, new = self.record_run, tuple.__new__  # a NamedTuple's own __new__ is Python code
        return lambda fields: record(new(RunFacts, (job_id, *fields)))

    def heartbeat(self, worker: str, pid: int, host: str, ts: float, lease: float | None = None) -> None:  # noqa: B027 - optional hook
        """Say that ``worker`` is alive until ``ts + lease`` (persistent stores use it to find dead workers)."""

    def remember_target(self, flow: str, target: str) -> None:
        """Remember where a flow's code lives (``file.py:flow``), so the CLI can resume its jobs."""
        self._targets = {**getattr(self, "_targets", {}), flow: target}

    def target_of(self, flow: str) -> str | None:
        return getattr(self, "_targets", {}).get(flow)

    def flush(self) -> None:  # noqa: B027 - optional hook: in-memory stores have nothing to flush
        """Make everything recorded so far durable."""

    def close(self) -> None:
        self.flush()

    # -- recovery ---------------------------------------------------------------------

    @abstractmethod
    def progress(self, job_id: str) -> Progress: ...

    def orphaned_jobs(self, lease: float, now: float) -> list[str]:
        """Jobs left running or pending by a process that is gone (none in memory).

        A job's owner is the process that created or last claimed it. It is gone when it is
        dead on this host, or, on another host, its worker's last heartbeat is older than
        that worker's own recorded lease (``lease`` when none was recorded).
        """
        return []

    def owner_alive(self, job_id: str, now: float, lease: float) -> bool:
        """Whether the job's owning process is alive, by the rule of `orphaned_jobs`."""
        return False

    @abstractmethod
    def claim(
        self,
        job_id: str,
        worker: str,
        seen: str | None,
        status: JobStatus,
        answered: tuple[str, int | None, Any] | None = None,
        becomes: JobStatus = JobStatus.RUNNING,
    ) -> bool:
        """Make this process (as ``worker``) the owner of a job that is ``status`` under the claim ``seen``.

        One atomic compare-and-set on the claim token and status read with the job's
        `Progress`: of several claims of the job as it was seen, exactly one gets True, and
        a claim made on a stale view (someone claimed it since) gets False. The job becomes
        ``becomes`` (running; cancelled for a cancel). ``answered`` is ``(node, item, answer)``
        when the claim resumes a suspension with an answer, recorded as a ``job_answered`` event.
        """

    # -- queries ------------------------------------------------------------------------

    @abstractmethod
    def jobs(
        self,
        flow: str | None = None,
        status: str | JobStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[JobRecord]: ...

    @abstractmethod
    def job(self, job_id: str) -> JobRecord: ...

    def job_ids(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` ids of jobs whose id starts with ``prefix``, among all jobs kept."""
        return [j.id for j in self.jobs(limit=2**62) if j.id.startswith(prefix)][:limit]

    @abstractmethod
    def node_runs(self, job_id: str) -> list[NodeRunRecord]: ...

    @abstractmethod
    def events(self, job_id: str, types: Sequence[str] | None = None) -> list[EventRecord]: ...

    @abstractmethod
    def state_history(self, job_id: str, key: str | None = None) -> list[StateRecord]: ...

    @abstractmethod
    def stats(self, flow: str, since: datetime | None = None) -> FlowStats: ...

    @abstractmethod
    def prune(self, older_than: datetime) -> int: ...

    # -- the dashboard (``aetherflow ui``) ------------------------------------------------

    def remember_topology(self, flow: str, topology_json: str) -> None:
        """Remember a flow's shape (`aetherflow.viz.topology`, as JSON: data, not code), to draw its jobs."""
        self._topologies = {**getattr(self, "_topologies", {}), flow: topology_json}

    def topology_of(self, flow: str) -> str | None:
        return getattr(self, "_topologies", {}).get(flow)

    def request_cancel(self, job_id: str, ts: float, by: str = "") -> None:
        """Ask the worker that owns a running job to cancel it (it does within a heartbeat)."""
        self._cancels = {**getattr(self, "_cancels", {}), job_id: ts}

    def taken_over(self, job_ids: Sequence[str]) -> list[str]:
        """Which of ``job_ids`` (jobs this process runs) another process has claimed since (none in memory)."""
        return []

    def cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        """Which of ``job_ids`` were asked to cancel since they last started running."""
        asked = getattr(self, "_cancels", {})
        return [j for j in job_ids if j in asked]

    def status_counts(self, flow: str | None = None) -> dict[str, int]:
        """Number of jobs per status (of one flow, or of all)."""
        counts: dict[str, int] = {}
        for j in self.jobs(flow=flow, limit=2**62):
            counts[j.status.value] = counts.get(j.status.value, 0) + 1
        return counts

    def flows(self) -> list[str]:
        """The names of the flows that have jobs here, sorted."""
        return sorted({j.flow for j in self.jobs(limit=2**62)})

    def workers(self, now: float, lease: float = 30.0) -> list[WorkerRecord]:
        """Workers that have sent a heartbeat here, latest first, each alive by the rule of `orphaned_jobs`."""
        return []

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
