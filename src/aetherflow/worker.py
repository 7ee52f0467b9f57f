"""`Worker`: a long-lived executor that runs many jobs of many flows at once (the façade).

It holds the public API (submit, run, map, resume, recover, close, on, worker_state),
resolves each flow's context and injectors, and starts jobs: each job gets a `Driver`
(driver.py), which alone changes the job's `JobRun` and `Job`. Node calls run on the
worker's runner (runner.py): by default a `LocalRunner` with its threads and event loop;
`aetherflow.dask.DaskWorker` passes a Dask runner. The worker also owns the worker-scoped
instances, the `worker_state` spaces, the store, and the heartbeat. `default_worker` is
the worker behind ``flow.run()``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import numbers
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from .caches import IdentityCache
from .context import is_context_class, provider_names
from .driver import Crew, Driver, Starts, recorded_job
from .errors import (
    AetherFlowError,
    JobClaimedError,
    MissingInputError,
    UsageError,
    closest,
)
from .events import Hooks
from .execution import current_execution
from .flow import Flow, as_flow
from .graph import B_PROVIDER, Plan, job_inputs
from .invoke import JobCall
from .job import Job
from .lifetimes import check_lifetimes
from .missing_context import explain, modules_of
from .node import Node
from .providers import injector_of
from .recovery import claim, give_answer, rebuild, refuse_redacted_inputs
from .runner import LocalRunner, Runner
from .scheduler import JobRun
from .scopes import JobScopes, ScopeCache
from .sentinels import UNSET
from .state import StateScope, StateSpace, commit
from .status import JobStatus
from .store import Store, open_store
from .store.serialize import value_checker
from .tracing import telemetry_for
from .viz import topology_json

log = logging.getLogger("aetherflow.worker")  # the same logger as events.py's

# Enum members read once: in Python 3.11 `JobStatus.X` costs ~10x a global (EnumType.__getattr__).
JOB_RUNNING, JOB_COMPLETED, JOB_SUSPENDED = JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.SUSPENDED

# (context, flow plan) pairs whose injectors a worker keeps: far more than a service uses,
# few enough that a new context or flow per request cannot pile up.
INJECTOR_CACHE_SIZE = 256


class _Prepared(NamedTuple):
    """A flow made ready to run in one context: what its jobs share."""

    flow: Flow
    name: str
    context: Any
    plan: Plan
    injectors: dict[str, Callable[[], Any]]
    observed: bool  # someone listens to per-node events (hooks or DEBUG logs)


_ID_BATCH = 256  # ids drawn per os.urandom call
_ids: list[str] = []
os.register_at_fork(after_in_child=_ids.clear)  # a forked child must never hand out its parent's ids


def new_job_id() -> str:
    """A random 128-bit hex id from os.urandom, as uuid4 draws its bits (without building a UUID: a third of the cost).

    Never the `random` module: a `random.seed()` anywhere in user code would repeat ids,
    and two processes seeded alike would overwrite each other's jobs. The bits are drawn
    256 ids at a time: one system call per id cost ~0.4 µs of a map's ~10 µs per job.
    ``list.pop`` is atomic, so no two threads get the same id; two threads that refill
    at once only waste one batch.
    """
    try:
        return _ids.pop()
    except IndexError:
        text = os.urandom(16 * _ID_BATCH).hex()
        _ids[:] = [text[k : k + 32] for k in range(32, 32 * _ID_BATCH, 32)]
        return text[:32]


def _default_threads() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


def _as_flow(flow: Flow | Node) -> Flow:
    return flow.as_flow() if isinstance(flow, Node) else flow


def _acquire_blas(blas_threads: int | None, threads: int) -> int | None:
    """Cap the BLAS libraries' own threads (one each when several worker threads run numpy at once)."""
    if blas_threads is UNSET:
        blas_threads = 1 if threads > 1 else None
    if blas_threads is not None:
        from . import blas

        blas.acquire(blas_threads)
    return blas_threads


def _check_options(threads: object, durability: object, lease: object) -> None:
    """Refuse option values that cannot work (``threads=-1`` used to hang for ever)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1):
        raise UsageError(
            f"Worker(threads=...) must be a positive int (the number of threads that run nodes), "
            f"found {threads!r}. Pass threads=1 or more, or leave it out for the default "
            f"(min(32, CPUs + 4))."
        )
    if durability not in ("sync", "async"):
        raise UsageError(
            f"Worker(durability=...): durability must be 'sync' or 'async', found {durability!r}. "
            "'sync' writes each commit before the next node starts; 'async' batches writes."
        )
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease > 0:  # NaN is not > 0
        raise UsageError(
            f"Worker(lease=...) must be a positive number of seconds (how long a silent worker "
            f"keeps its jobs), found {lease!r}. Leave it out for the default, 30."
        )


class Worker:
    """Runs jobs on its own threads; a context manager.

    >>> with Worker(AppContext, threads=8, store="sqlite:///runs.db") as worker:
    ...     job = worker.submit(flow, {"path": "users.csv"})
    ...     print(job.result())
    """

    def __init__(
        self,
        context: Any = None,
        *,
        threads: int | None = None,
        store: Store | str | None = None,
        durability: str = "sync",
        flows: Iterable[Flow | Node] | None = None,
        name: str | None = None,
        blas_threads: int | None = UNSET,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        lease: float = 30.0,
        runner: Runner | None = None,
    ) -> None:
        """``runner``: where node calls run (default: a `LocalRunner` of ``threads`` threads; see runner.py)."""
        _check_options(threads, durability, lease)  # before any thread or store exists
        self.id = name or f"worker-{uuid.uuid4().hex[:8]}"
        self.context = context
        self.threads = _default_threads() if threads is None else int(threads)
        self.lease = lease
        self._owns_store = not isinstance(store, Store)
        self.store: Store = (
            store if isinstance(store, Store) else open_store(store or "memory://", durability=durability)
        )
        self._check_value = value_checker(self.store)
        self._flows: dict[str, Flow] = {f.name: f for f in map(_as_flow, flows or ())}  # for resume and recover
        self._topologies: dict[str, Any] = {}  # flow name -> the graph whose shape this worker recorded (dashboard)
        self._hooks = Hooks(on_event)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self._contexts: dict[type, Any] = {}
        # Keyed by the (context, plan) objects themselves, never by their ids (see caches.py).
        self._injectors: IdentityCache[dict[str, Callable[[], Any]]] = IdentityCache(INJECTOR_CACHE_SIZE)
        self._worker_cache = ScopeCache(f"worker {self.id}")
        self._worker_spaces: dict[tuple[str, str], StateSpace] = {}
        self._blas = _acquire_blas(blas_threads, self.threads)
        self._runner: Runner = runner if runner is not None else LocalRunner()
        self._runner.start(self.id, self.threads)
        self._telemetry = telemetry_for(self.id, self._runner.queued)  # OpenTelemetry, or None: decided once per worker
        self._crew = Crew(self.store, self._hooks, self._runner, self._idle)  # what every job's driver shares
        self._active = self._crew.active  # the drivers of the jobs running here, by job id
        # Bound methods handed to every job, made once (each would be a new object per job).
        self._thread_cache_fn = self._runner.thread_caches.get
        self._worker_space_fn = self._worker_space
        self._cancel_fn = self._cancel
        self._emit_fn = self._hooks.emit
        self._heartbeat_stop = threading.Event()
        if self.store.persistent:  # a store other processes read: say this one is alive, every lease / 3
            self._beat_once()
            threading.Thread(target=self._beat, name=f"{self.id}-heartbeat", daemon=True).start()

    # -- public API -----------------------------------------------------------------------

    def add_flow(self, flow: Flow | Node) -> Flow:
        """Make ``flow`` known by name, for `resume` and `recover`."""
        f = _as_flow(flow)
        self._flows[f.name] = f
        return f

    def on(self, event: str, fn: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``fn(event, data)`` on ``event`` (one of `aetherflow.events.EVENTS`)."""
        self._hooks.on(event, fn)

    def submit(self, flow: Flow | Node, inputs: Mapping[str, Any] | None = None, *, context: Any = None) -> Job:
        """Start one job of ``flow`` and return its `Job` at once."""
        return self._start(self._prepare(flow, context), inputs)

    def run(self, flow: Flow | Node, inputs: Mapping[str, Any] | None = None, *, context: Any = None) -> Any:
        """Run one job and wait for its result.

        The calling thread works on the job instead of idling: it runs the first ready node
        and each first ready successor after it, as a worker thread would; any other ready
        node goes to the worker's threads. A chain then pays no thread hand-off at all.
        """
        return self._start(self._prepare(flow, context), inputs, first_here=True).result()

    def map(
        self,
        flow: Flow | Node,
        many_inputs: Iterable[Mapping[str, Any]],
        *,
        context: Any = None,
        progress: bool = True,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Run one job per inputs mapping, all at once; outputs in input order.

        The first failed job's error is raised, unless ``return_exceptions=True``: then
        each failed job's error takes its place in the list (like ``asyncio.gather``), and
        so does the error of inputs that cannot start a job. Inputs that cannot start a job
        otherwise cancel the jobs already started and raise.
        """
        from .progress import job_progress

        prepared = self._prepare(flow, context)
        started = self._start_each(prepared, many_inputs, return_exceptions)
        jobs = [item for item in started if isinstance(item, Job)]
        try:
            with job_progress(jobs, prepared.name, enabled=progress):
                return [
                    item if isinstance(item, AetherFlowError) else _outcome(item, return_exceptions) for item in started
                ]
        except KeyboardInterrupt:
            _cancel_all(jobs)  # Ctrl-C: the jobs of this map start no more nodes
            raise

    def _start_each(
        self, prepared: _Prepared, many_inputs: Iterable[Mapping[str, Any]], keep_errors: bool
    ) -> list[Job | AetherFlowError]:
        """A job per inputs, or (``keep_errors``) the error of inputs that cannot start one; else nothing is left running.

        Each job is recorded here, and begun by a runner thread when one is free (`Starts`):
        its `JobRun` and `JobCall` are made then, not while it waits.
        """
        started: list[Job | AetherFlowError] = []
        starts = Starts(
            prepared.flow.graph,
            prepared.plan,
            self._call_maker(prepared),
            self._runner,
            self.threads,
        )
        try:
            for inputs in many_inputs:
                try:
                    started.append(self._enqueue(prepared, inputs, starts))
                except AetherFlowError as exc:
                    if not keep_errors:
                        raise
                    started.append(exc)
        except BaseException:  # bad inputs, or Ctrl-C while starting: no job of this map is left without a handle
            _cancel_all([item for item in started if isinstance(item, Job)])
            raise
        return started

    def resume(
        self,
        job_id: str,
        flow: Flow | Node | None = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        context: Any = None,
        answer: Any = UNSET,
    ) -> Job:
        """Continue a job from its committed progress; completed nodes are not run again.

        ``inputs`` adds job inputs for the rest of the job; ``answer`` answers its
        suspension: the node that suspended gets it as its ``answer`` parameter, once.
        """
        return self._resume(job_id, flow, inputs, context, answer, taking_over=False)

    def _resume(
        self,
        job_id: str,
        flow: Flow | Node | None,
        inputs: Mapping[str, Any] | None,
        context: Any,
        answer: Any,
        *,
        taking_over: bool,
    ) -> Job:
        """`resume`; ``taking_over`` (for `recover`): a job someone finished meanwhile is not ours to return."""
        with self._lock:
            driver = self._active.get(job_id)
        live = driver.job if driver is not None else None
        if live is not None and live.status is not JobStatus.SUSPENDED:
            raise JobClaimedError(
                f"Job {job_id} is still {live.status.value} on this worker; wait for it or cancel it first."
            )
        progress = self.store.progress(job_id)
        record = progress.job
        if record.status is JobStatus.CANCELLED:
            raise AetherFlowError(
                f"Job {job_id} was cancelled, and a cancelled job stays cancelled. Submit a new job of flow '{record.flow}' instead."
            )
        if answer is not UNSET and record.status is not JOB_SUSPENDED:
            raise AetherFlowError(
                f"Job {job_id} is {record.status.value}, not suspended: answer= answers a suspension. Resume it without answer=."
            )
        prepared = self._prepare(self._flow_for(record.flow, flow), context)
        f, name, _, plan, _, _ = prepared
        _refuse_unknown_inputs(plan, name, job_inputs(inputs))
        values = {**record.inputs, **(inputs or {})}
        _check_inputs(prepared, values)
        rebuilt = rebuild(progress, f.graph, plan, values, name)
        if taking_over and record.status not in (JOB_RUNNING, JobStatus.PENDING):
            raise JobClaimedError(
                f"Job {job_id} is {record.status.value} now: another worker took it over and got this far meanwhile."
            )
        if record.status is JOB_COMPLETED:
            return self._recorded(
                prepared, rebuilt.run, rebuilt.run.result()
            )  # values restored through their annotations
        refuse_redacted_inputs(plan, record, inputs or {})
        answered = give_answer(progress, rebuilt.run, answer)
        claim(self.store, progress, self.id, self.lease, answered)  # records the job as running here
        try:
            return self._launch(prepared, rebuilt.run, rebuilt.ready, ended=rebuilt.ended, resumed=True)
        except AetherFlowError:  # closed meanwhile: give the job back as it was, for another worker
            self.store.set_job_status(job_id, record.status, time.time(), error=record.error)
            raise

    def recover(self, flows: Iterable[Flow | Node] | None = None) -> list[Job]:
        """Take over every job whose worker is gone (dead process here, or expired heartbeat)."""
        for f in flows or ():
            self.add_flow(f)
        jobs = []
        for job_id in self.store.orphaned_jobs(self.lease, time.time()):
            record = self.store.job(job_id)
            if record.flow not in self._flows:
                continue  # left for a worker that knows the flow
            try:
                jobs.append(self._resume(job_id, None, None, None, UNSET, taking_over=True))
            except JobClaimedError:
                continue  # another worker took it first
            except MissingInputError as exc:  # a secret input the store never kept: it cannot run unattended
                seen = self.store.progress(job_id).token
                if self.store.claim(job_id, self.id, seen, record.status, becomes=JobStatus.FAILED):
                    self.store.set_job_status(
                        job_id, JobStatus.FAILED, time.time(), error=f"Could not be recovered: {exc}"
                    )
        return jobs

    def worker_state(self, flow: str, node: str) -> dict[str, Any]:
        """The committed ``worker_state`` of ``node`` in ``flow``, as a plain dict."""
        space = self._worker_spaces.get((flow, node))
        return space.snapshot() if space is not None else {}

    def close(self) -> None:
        """Wait for running jobs (not suspended ones), then dispose worker- and thread-scoped instances."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._crew.closing = True
            while self._active:
                self._idle.wait(0.05)
        self._runner.close()
        self._worker_cache.close()
        self._heartbeat_stop.set()
        if self._owns_store:
            self.store.close()
        else:
            self.store.flush()
        if self._blas is not None:
            from . import blas

            blas.release()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._cancel_unfinished()  # Ctrl-C: start nothing more, wait only for the nodes running now
        self.close()

    def _cancel_unfinished(self) -> None:
        """Cancel every job of this worker that is not suspended; running nodes finish, queued ones never start."""
        _cancel_all([d.job for d in list(self._active.values()) if d.job.status is not JOB_SUSPENDED])

    def __repr__(self) -> str:
        return f"<Worker {self.id} threads={self.threads} store={self.store.url}>"

    # -- starting jobs ----------------------------------------------------------------------

    def _prepare(self, flow: Flow | Node, context: Any) -> _Prepared:
        """What every job of ``flow`` in ``context`` shares: resolved once, for `map`'s many jobs."""
        self._refuse_if_closed()  # before a job is recorded that would never run
        f = as_flow(flow, "submit(flow)")  # a non-flow is a UsageError, not an AttributeError
        ctx = self._context_for(f, context)
        if ctx is not None:
            self._runner.accepts(ctx, f.name)
        plan = f.graph.bind(provider_names(ctx))
        observed = self._hooks.wanted()
        return _Prepared(f, f.name, ctx, plan, self._injectors_for(ctx, plan), observed)

    def _start(self, prepared: _Prepared, inputs: Mapping[str, Any] | None, first_here: bool = False) -> Job:
        job_id = new_job_id()
        try:
            values = self._record(prepared, inputs, job_id)
        except KeyboardInterrupt:
            self._cancel_interrupted(job_id)
            raise
        run = JobRun(job_id, prepared.flow.graph, prepared.plan, values)
        return self._launch(prepared, run, run.start(), first_here=first_here)

    def _enqueue(self, prepared: _Prepared, inputs: Mapping[str, Any] | None, starts: Starts) -> Job:
        """Record a job of `map` and hand it to ``starts``, which begins it on a free thread."""
        self._refuse_if_closed()
        job_id = new_job_id()
        try:
            values = self._record(prepared, inputs, job_id)
            job = Job(job_id, prepared.flow, None, self._cancel_fn)
            driver = Driver(self._crew, job, None, None, values)
            self._register(driver)
        except KeyboardInterrupt:
            # Also after its record committed: CPython raises a Ctrl-C at any call, and until
            # the job is registered nobody else can cancel it (recover() would run it).
            self._crew.done(job_id)
            self._cancel_interrupted(job_id)
            raise
        starts.add(driver)
        return job

    def _register(self, driver: Driver, new: bool = True) -> None:
        """Count a job among those close() waits for; refuse it if close() began meanwhile.

        No lock on the per-job path: close() sets ``_closed`` before it looks at ``_active``,
        and this adds to ``_active`` before it looks at ``_closed``, so one of the two sees
        the other. A ``new`` job refused here is recorded cancelled, not left running (a
        resumed one stays as its record says, for the next resume or recover()).
        """
        job_id = driver.job.id
        self._active[job_id] = driver  # atomic
        if self._closed and not self._inside_a_running_job():
            self._crew.done(job_id)  # wakes a close() that saw it
            if new:
                with contextlib.suppress(Exception):  # the refusal below is what the caller must learn
                    self.store.set_job_status(
                        job_id, JobStatus.CANCELLED, time.time(), error="the worker closed before the job began"
                    )
            self._refuse_if_closed()

    def _record(self, prepared: _Prepared, inputs: Mapping[str, Any] | None, job_id: str) -> dict[str, Any]:
        """Check a job's inputs and record it in the store as ``job_id``; its inputs.

        The caller draws the id, so that a Ctrl-C landing anywhere in here (or just after)
        can still be recorded against it (`_cancel_interrupted`).
        """
        f, name, _, plan, _, _ = prepared
        values = job_inputs(inputs)  # a mapping with str keys, else UsageError
        _check_inputs(prepared, values)
        if (
            self.store.persistent and self._topologies.get(name) is not f.graph
        ):  # once per flow here: the dashboard draws its jobs
            self._topologies[name] = f.graph
            self.store.remember_topology(name, topology_json(f.graph))
        stored = self._storable_inputs(plan, values)
        if self._check_value is not None:
            self._check_inputs_storable(self._check_value, stored)
        self.store.create_job(job_id, name, stored, self.id, time.time(), running=True)
        return values

    def _cancel_interrupted(self, job_id: str) -> None:
        """Ctrl-C while a job was being submitted: it never started, and never will (a no-op if it was not recorded)."""
        with contextlib.suppress(Exception):
            self.store.set_job_status(
                job_id, JobStatus.CANCELLED, time.time(), error="interrupted while it was being submitted"
            )

    def _check_inputs_storable(self, check: Callable[[Any, str, str], None], inputs: dict[str, Any]) -> None:
        """Refuse, with what to do, an input the store cannot hold (rather than the encoder's own error)."""
        for key, value in inputs.items():
            try:
                check(value, "(job)", f"input '{key}'")
            except AetherFlowError as exc:
                raise UsageError(
                    f"Job input '{key}' ({type(value).__name__}) cannot be stored in {self.store.url}. Pass JSON-able data "
                    "(dicts, lists, str, numbers, pydantic models), or open the store with pickle=True if you trust "
                    "everyone who can write to it."
                ) from exc

    def _recorded(self, prepared: _Prepared, run: JobRun, output: Any) -> Job:
        """A completed job, as its record says: resuming it runs nothing and writes nothing."""
        return recorded_job(Job(run.job_id, prepared.flow, run, self._cancel_fn), output)

    def _launch(
        self,
        prepared: _Prepared,
        run: JobRun,
        ready: list[int],
        first_here: bool = False,
        ended: bool = False,
        resumed: bool = False,
    ) -> Job:
        self._refuse_if_closed()
        job = Job(run.job_id, prepared.flow, run, self._cancel_fn)
        driver = Driver(self._crew, job, run, self._call_maker(prepared, resumed)(run))
        self._register(driver, new=not resumed)
        driver.start(ready, first_here, ended)
        return job

    def _call_maker(self, prepared: _Prepared, resumed: bool = False) -> Callable[[JobRun], JobCall]:
        """What makes a job's `JobCall` (what every node call of the job shares), as the job starts.

        Everything but the run is bound once, for `map`'s many jobs; the `JobCall` is built
        by position, since a call by keyword costs more and one is made per job.
        """
        _, name, ctx, _, injectors, observed = prepared
        worker_id, worker_cache, thread_cache = self.id, self._worker_cache, self._thread_cache_fn
        worker_space, check, recorder, emit = (
            self._worker_space_fn,
            self._check_value,
            self.store.run_recorder,
            self._emit_fn,
        )
        telemetry = self._telemetry

        def make(run: JobRun) -> JobCall:
            job_id = run.job_id
            call = JobCall(
                run,
                worker_id,
                name,
                injectors,
                JobScopes(worker_cache, job_id, thread_cache),
                worker_space,
                check,
                commit,
                ctx,
                observed,
                recorder(job_id),
                emit,
            )
            if telemetry is not None:  # OpenTelemetry: the job's span (tracing.py)
                call.trace = telemetry.start_job(job_id, name, resumed)
            return call

        return make

    def _refuse_if_closed(self) -> None:
        if self._closed and not self._inside_a_running_job():
            raise AetherFlowError(f"Worker {self.id} is closed; create a new Worker to run more jobs.")

    def _inside_a_running_job(self) -> bool:
        """Whether a node of one of this worker's jobs is asking: its nested jobs are part of that job, which close() waits for."""
        ex = current_execution()
        return ex is not None and ex.worker_id == self.id and ex.job_id in self._active

    def _context_for(self, flow: Flow, context: Any) -> Any:
        ctx = context if context is not None else flow.context if flow.context is not None else self.context
        if ctx is None:
            return None
        if is_context_class(ctx):
            instance = self._contexts.get(ctx)
            if instance is None:
                with self._lock:
                    instance = self._contexts.get(ctx)
                    if instance is None:
                        instance = self._contexts[ctx] = ctx()
            ctx = instance
        if isinstance(ctx, type) or not hasattr(ctx, "providers"):
            raise TypeError(f"context must be a BaseFlowContext subclass or instance, found {ctx!r}.")
        return ctx

    def _injectors_for(self, ctx: Any, plan: Plan) -> dict[str, Callable[[], Any]]:
        injectors = self._injectors.get(ctx, plan)
        if injectors is None:
            injectors = self._injectors.put(ctx, plan, self._make_injectors(ctx, plan))
        return injectors

    @staticmethod
    def _make_injectors(ctx: Any, plan: Plan) -> dict[str, Callable[[], Any]]:
        """Per provider a node of ``plan`` asks for, what fills that parameter from ``ctx``."""
        if ctx is None:
            return {}
        check_lifetimes(ctx, plan.flow)
        return {
            b.key: injector_of(ctx.providers[b.key])
            for vp in plan.vertices
            for b in vp.bindings
            if b.kind == B_PROVIDER
        }

    def _storable_inputs(self, plan: Plan, values: dict[str, Any]) -> dict[str, Any]:
        if not plan.secret_inputs:
            return values
        from .store.serialize import storable_input

        stored = dict(values)
        for name in plan.secret_inputs:
            if name in values:
                readers = [vp.node.annotation(name) for vp in plan.vertices if vp.name in plan.inputs[name].nodes]
                stored[name] = storable_input(values[name], readers[0]) if readers else "**********"
        return stored

    def _flow_for(self, name: str, flow: Flow | Node | None) -> Flow:
        if flow is not None:
            return flow.as_flow() if isinstance(flow, Node) else flow
        known = self._flows.get(name)
        if known is None:
            raise AetherFlowError(
                f"Cannot resume a job of flow '{name}': this worker does not know that flow. "
                f"Pass it (worker.resume(job_id, flow=...)) or register it with Worker(flows=[...]). "
                f"Known flows: {', '.join(self._flows) or 'none'}."
            )
        return known

    # -- jobs running here -------------------------------------------------------------------

    def _cancel(self, job: Job) -> None:
        if job.status is JOB_SUSPENDED:  # nothing runs: it just will never be resumed
            progress = self.store.progress(job.id)  # unless it was resumed meanwhile: then the resume wins
            if progress.job.status is JOB_SUSPENDED and self.store.claim(
                job.id, self.id, progress.token, JOB_SUSPENDED, becomes=JobStatus.CANCELLED
            ):
                self.store.set_job_status(job.id, JobStatus.CANCELLED, time.time(), error="cancelled while suspended")
                job._cancelled_while_suspended()
            return
        driver = self._active.get(job.id)
        if driver is not None and driver.job is job:
            driver.cancel()

    # -- scopes and state ----------------------------------------------------------------------

    def _worker_space(self, flow: str, node: str) -> StateSpace:
        key = (flow, node)
        space = self._worker_spaces.get(key)
        if space is None:
            with self._lock:
                space = self._worker_spaces.setdefault(key, StateSpace(StateScope.WORKER, f"{flow}/{node}"))
        return space

    def _beat_once(self) -> None:
        self.store.heartbeat(self.id, os.getpid(), socket.gethostname(), time.time(), self.lease)

    def _beat(self) -> None:
        while not self._heartbeat_stop.wait(self.lease / 3):
            try:
                self._beat_once()
                for job_id in (
                    self.store.cancel_requests(list(self._active)) if self._active else ()
                ):  # from the dashboard
                    if (driver := self._active.get(job_id)) is not None:
                        driver.job.cancel()
                for job_id in (
                    self.store.taken_over(list(self._active)) if self._active else ()
                ):  # paused past the lease
                    if (driver := self._active.get(job_id)) is not None:
                        driver.let_go()
            except Exception:
                log.warning("Heartbeat of %s failed", self.id, exc_info=True)


def _check_inputs(prepared: _Prepared, values: dict[str, Any]) -> None:
    """`Plan.check_inputs`, blaming a missing context instead of the inputs when a context would fix it."""
    try:
        prepared.plan.check_inputs(values, prepared.name)
    except MissingInputError as exc:
        flow = prepared.flow
        why = explain(flow, prepared.context, values, modules_of(flow), lambda where, name: f"pass context={name}")
        if why is None:
            raise
        raise MissingInputError(exc.flow, exc.missing, exc.hints, why) from None


def _refuse_unknown_inputs(plan: Plan, flow: str, given: dict[str, Any]) -> None:
    """A resume's input that no node reads is a typo more often than not: say so, with a suggestion."""
    for key in given:
        if key not in plan.inputs:
            near = closest(key, plan.inputs)
            hint = f" Did you mean '{near[0]}'?" if near else ""
            known = ", ".join(sorted(plan.inputs)) or "none"
            raise UsageError(
                f"resume(inputs=...): no node of flow '{flow}' reads an input '{key}'.{hint} Its inputs: {known}."
            )


def _cancel_all(jobs: list[Job]) -> None:
    for job in jobs:
        job.cancel()


def _outcome(job: Job, return_exceptions: bool) -> Any:
    if not return_exceptions:
        return job.result()
    try:
        return job.result()
    except Exception as exc:  # noqa: BLE001 - handed back in place, as asyncio.gather does
        return exc


_default: Worker | None = None
_default_lock = threading.Lock()


def default_worker() -> Worker:
    """The worker behind ``flow.run()`` without ``worker=``: created on first use, closed at exit."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Worker(name=f"default-{os.getpid()}")
                atexit.register(_default.close)
    return _default
