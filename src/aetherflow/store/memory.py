"""`memory://`: the library's default store, in this process, bounded to ``max_jobs`` finished jobs."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import StoreError
from ..runs import RunFacts, RunFields
from ..sentinels import DELETED, UNSET
from ..status import ENDED, JobStatus, NodeStatus
from .base import Progress, Store, pending_answer
from .records import EventRecord, JobRecord, NodeRunRecord, StateRecord, epoch, utc
from .stats import flow_stats

_RUN_WIDTH = len(RunFacts._fields) - 1  # values per run in `_Job.runs` (job_id is the job's)
_PENDING, _RUNNING = (
    JobStatus.PENDING,
    JobStatus.RUNNING,
)  # read once: `JobStatus.X` is slow in Python 3.11 (EnumType.__getattr__)


@dataclass(slots=True)
class _Job:
    id: str
    flow: str
    inputs: dict[str, Any]
    worker: str
    created: float
    status: JobStatus = JobStatus.PENDING
    started: float | None = None
    finished: float | None = None
    output: Any = None
    error: str | None = None
    # Runs, flat: each run's `RunFields` one after another. A `RunFacts` each would be one
    # more object per node run for the garbage collector to walk for as long as the job is
    # kept; this way a run is recorded by one `list.extend`, atomic under the GIL.
    runs: list[Any] = field(default_factory=list)
    # Status changes, flat (ts, status, error, ts, ...), once a job has more than the usual
    # two; until then (None) they are read off `started`, `finished`, `status` and `error`.
    # Every object a kept job holds is one more for each full garbage collection to walk.
    changes: list[Any] | None = None
    claim: str | None = None  # the token of the last claim (see Store.claim)
    answers: list[tuple[float, str, int | None, Any]] | None = (
        None  # (ts, node, item, answer) of each resume that answered a suspension
    )

    def run_facts(self) -> list[RunFacts]:
        flat = self.runs[:]  # one atomic copy: writers add whole runs
        return [RunFacts(self.id, *flat[k : k + _RUN_WIDTH]) for k in range(0, len(flat), _RUN_WIDTH)]

    def status_changes(self) -> list[tuple[float, JobStatus, str | None]]:
        c = self.changes
        if c is not None:
            return list(zip(c[0::3], c[1::3], c[2::3], strict=True))
        usual: list[tuple[float, JobStatus, str | None]] = (
            [(self.started, _RUNNING, None)] if self.started is not None else []
        )
        if self.finished is not None:
            usual.append((self.finished, self.status, self.error))
        return usual

    def is_usual_change(self, status: JobStatus, error: str | None) -> bool:
        """Whether a change keeps the history readable off the fields: a first start, or an end."""
        if self.changes is not None or self.finished is not None:
            return False
        return status in ENDED or (status is _RUNNING and self.started is None and error is None)

    def record(self) -> JobRecord:
        return JobRecord(
            self.id,
            self.flow,
            self.status,
            self.inputs,
            self.output,
            self.error,
            utc(self.created),
            utc(self.started),
            utc(self.finished),
            self.worker,
        )


class MemoryStore(Store):
    """Keeps everything in dicts; the oldest finished jobs beyond ``max_jobs`` are dropped."""

    def __init__(self, max_jobs: int = 10_000) -> None:
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._records_its_own_way = type(self).record_run is not MemoryStore.record_run  # a subclass's
        self._ends_its_own_way = (
            self._records_its_own_way or type(self).set_job_status is not MemoryStore.set_job_status
        )

    # -- writes ---------------------------------------------------------------------

    # Writes take no lock: each is a few dict/list operations that are atomic under the GIL,
    # and a lock here makes worker threads queue behind one another (a lock convoy).

    # Events are derived from the job's facts when asked for (see `events`), not built per write.

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
        if running:
            self._jobs[job_id] = _Job(job_id, flow, inputs, worker, ts, _RUNNING, ts, None, None, None, [])
        else:
            self._jobs[job_id] = _Job(job_id, flow, inputs, worker, ts, _PENDING, None, None, None, None, [])

    def set_job_status(
        self, job_id: str, status: JobStatus, ts: float, *, output: Any = UNSET, error: str | None = None
    ) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return  # dropped by the retention bound
        if not job.is_usual_change(status, error):
            if job.changes is None:
                job.changes = [value for change in job.status_changes() for value in change]
            job.changes += (ts, status, error)
        job.status = status
        if status is _RUNNING and job.started is None:
            job.started = ts
        if status in ENDED:
            job.finished = ts
        if output is not UNSET:
            job.output = output
        job.error = error
        if status in ENDED:  # suspended jobs count toward the bound too: nobody may ever resume them
            self._finished[job_id] = None
            self._drop_oldest()
        else:
            self._finished.pop(job_id, None)  # resumed: running again, never dropped while it runs

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
        job = self._jobs.get(job_id)
        if job is None or self._ends_its_own_way or job.changes is not None or job.finished is not None:
            super().end_job(job_id, status, ts, output=output, error=error, last_run=last_run)
            return
        if last_run is not None:
            job.runs.extend(last_run[1:])
        if status not in ENDED:
            self.set_job_status(job_id, status, ts, output=output, error=error)
            return
        # The usual end of a job, as `set_job_status` records it: on the fields, no list of changes.
        job.status, job.finished, job.error = status, ts, error
        if output is not UNSET:
            job.output = output
        self._finished[job_id] = None
        if len(self._finished) > self.max_jobs:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        while len(self._finished) > self.max_jobs:
            try:
                old, _ = self._finished.popitem(last=False)
            except KeyError:
                return  # another thread dropped it first
            self._jobs.pop(old, None)

    def record_run(self, facts: RunFacts) -> None:
        # The run's events are derived from its facts when someone asks for them.
        job = self._jobs.get(facts.job_id)
        if job is not None:
            job.runs.extend(facts[1:])

    def run_recorder(self, job_id: str) -> Callable[[RunFields], None]:
        job = self._jobs.get(job_id)
        if job is None or self._records_its_own_way:
            return super().run_recorder(job_id)
        return job.runs.extend  # the hot path of the default store: the whole write

    # -- recovery ---------------------------------------------------------------------

    def claim(
        self,
        job_id: str,
        worker: str,
        seen: str | None,
        status: JobStatus,
        answered: tuple[str, int | None, Any] | None = None,
        becomes: JobStatus = _RUNNING,
    ) -> bool:
        with self._lock:
            job = self._get(job_id)
            if job.claim != seen or job.status is not status:
                return False
            job.worker, job.claim = worker, uuid.uuid4().hex
            now = time.time()
            self.set_job_status(job_id, becomes, now)
            if answered is not None:
                job.answers = [*(job.answers or ()), (now, *answered)]
        return True

    def progress(self, job_id: str) -> Progress:
        job = self._get(job_id)
        completed = []
        state: dict[tuple[str, str], dict[str, tuple[Any, int]]] = {}
        suspended: tuple[str | None, int | None] = (None, None)
        ended: dict[tuple[str, int | None], float] = {}
        for run in job.run_facts():
            ended[(run.node, run.item)] = max(run.finished, ended.get((run.node, run.item), 0.0))
            if run.status is NodeStatus.COMPLETED:
                completed.append((run.node, run.item, run.output))
                for c in run.commits:
                    if c.scope.value == "worker":
                        continue
                    space = state.setdefault((c.scope.value, c.namespace), {})
                    for w in c.writes:
                        space[w.key] = (UNSET if w.value is DELETED else w.value, w.version)
            elif run.status is NodeStatus.SUSPENDED:
                suspended = (run.node, run.item)
        answered = job.answers[-1] if job.answers else None
        return Progress(
            job.record(), completed, state, suspended[0], suspended[1], pending_answer(answered, ended), job.claim
        )

    # -- queries --------------------------------------------------------------------------

    def _get(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise StoreError(
                f"No job {job_id!r} in {self.url} (it may never have run here, or was dropped past max_jobs={self.max_jobs})."
            )
        return job

    def jobs(
        self,
        flow: str | None = None,
        status: str | JobStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[JobRecord]:
        lo, hi = epoch(since), epoch(until)
        with self._lock:
            found = []
            for job in reversed(list(self._jobs.values())):
                if (
                    (flow is None or job.flow == flow)
                    and (status is None or job.status == status)
                    and (lo is None or job.created >= lo)
                    and (hi is None or job.created < hi)
                ):
                    found.append(job.record())
                    if len(found) >= limit:
                        break
        return found

    def job(self, job_id: str) -> JobRecord:
        return self._get(job_id).record()

    def node_runs(self, job_id: str) -> list[NodeRunRecord]:
        runs = sorted(self._get(job_id).run_facts(), key=lambda r: r.started)
        return [
            NodeRunRecord(
                r.job_id,
                r.node,
                r.iteration,
                r.attempt,
                r.status,
                r.thread,
                utc(r.started),
                utc(r.finished),
                r.error,
                r.traceback,
                r.item,
            )
            for r in runs
        ]

    def events(self, job_id: str, types: Sequence[str] | None = None) -> list[EventRecord]:
        job = self._get(job_id)
        evs: list[tuple[float, int, str, str | None, dict[str, Any]]] = [
            (job.created, 0, "job_created", None, {"inputs": job.inputs})
        ]
        evs += [
            (ts, order, f"job_{st.value}", None, {"error": err} if err else {})
            for order, (ts, st, err) in enumerate(job.status_changes(), 1)
        ]
        evs += [
            (ts, 500_000, "job_answered", None, {"node": node, "item": item, "answer": answer})
            for ts, node, item, answer in job.answers or ()
        ]
        for k, run in enumerate(job.run_facts()):
            base = (k + 1) * 1_000_000
            evs.append(
                (run.started, base, "node_started", run.node, {"iteration": run.iteration, "attempt": run.attempt})
            )
            for j, c in enumerate(run.commits):
                evs.append(
                    (
                        c.ts,
                        base + 1 + j,
                        "state_committed",
                        run.node,
                        {"scope": c.scope.value, "keys": [w.key for w in c.writes]},
                    )
                )
            evs.append(
                (
                    run.finished,
                    base + 999_999,
                    f"node_{run.status.value}",
                    run.node,
                    {"error": run.error} if run.error else {},
                )
            )
        evs.sort(key=lambda e: (e[0], e[1]))
        return [
            EventRecord(seq, utc(ts), t, n, d)
            for seq, (ts, _, t, n, d) in enumerate(evs, 1)
            if types is None or t in types
        ]

    def state_history(self, job_id: str, key: str | None = None) -> list[StateRecord]:
        out = []
        for run in self._get(job_id).run_facts():
            for c in run.commits:
                for w in c.writes:
                    if key is None or w.key == key:
                        deleted = w.value is DELETED
                        out.append(
                            StateRecord(
                                c.scope.value,
                                c.namespace,
                                w.key,
                                None if deleted else w.value,
                                w.version,
                                utc(c.ts),
                                deleted,
                            )
                        )
        return sorted(out, key=lambda s: s.ts)

    def stats(self, flow: str, since: datetime | None = None) -> Any:
        lo = epoch(since) or 0.0
        with self._lock:
            jobs = [j for j in list(self._jobs.values()) if j.flow == flow and j.created >= lo]
            runs = [(r.node, r.status.value, r.finished - r.started) for j in jobs for r in j.run_facts()]
        return flow_stats(flow, [j.status.value for j in jobs], runs)

    def prune(self, older_than: datetime) -> int:
        cutoff = epoch(older_than) or time.time()
        with self._lock:
            old = [
                jid for jid, j in list(self._jobs.items()) if j.status.finished and (j.finished or j.created) < cutoff
            ]
            for jid in old:
                self._jobs.pop(jid, None)
                self._finished.pop(jid, None)
        return len(old)
