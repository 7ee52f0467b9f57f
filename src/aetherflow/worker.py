"""`Worker`: a long-lived executor that runs many jobs of many flows at once.

It owns its threads (fed by one `queue.SimpleQueue`), an event loop thread for
``async def`` nodes (started on first use), the worker- and thread-scoped instances, the
`worker_state` spaces, and a store. A thread that finishes a node runs the node's first
ready successor itself, so a chain pays no thread hand-off per node.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import numbers
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from queue import SimpleQueue
from typing import Any, NamedTuple

from .caches import IdentityCache
from .context import is_context_class, provider_names
from .errors import (
    AetherFlowError,
    JobCancelledError,
    JobClaimedError,
    MissingInputError,
    NodeError,
    StoreError,
    Suspend,
    UsageError,
    closest,
)
from .events import Hooks
from .flow import Flow, as_flow
from .graph import B_PROVIDER, Plan, job_inputs
from .invoke import JobCall, Outcome, acall_node, call_node
from .job import Job, JobSuspendedError
from .lifetimes import check_lifetimes
from .node import Node
from .providers import injector_of
from .recovery import claim, give_answer, rebuild, refuse_redacted_inputs
from .runs import RunFacts
from .scheduler import JobRun
from .scopes import JobScopes, ScopeCache, ThreadCaches
from .sentinels import UNSET
from .state import StateScope, StateSpace
from .status import JobStatus, NodeStatus
from .store import Store, open_store
from .store.serialize import value_checker
from .tracing import telemetry_for
from .viz import topology_json

log = logging.getLogger("aetherflow.worker")  # the same logger as events.py's

# Enum members read once: in Python 3.11 `NodeStatus.X` costs ~10x a global (EnumType.__getattr__).
RUNNING, COMPLETED = NodeStatus.RUNNING, NodeStatus.COMPLETED
JOB_RUNNING, JOB_COMPLETED, JOB_SUSPENDED = JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.SUSPENDED

_Task = tuple[JobCall, Job, int, int]  # (call, job, vertex, item index or -1)
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


def new_job_id() -> str:
    """A random 128-bit hex id from os.urandom, as uuid4 draws its bits (without building a UUID: a third of the cost).

    Never the `random` module: a `random.seed()` anywhere in user code would repeat ids,
    and two processes seeded alike would overwrite each other's jobs.
    """
    return os.urandom(16).hex()


def _default_threads() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


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
    ) -> None:
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
        self._flows: dict[str, Flow] = {}
        self._topologies: dict[
            str, Any
        ] = {}  # flow name -> the graph whose shape this worker recorded (for the dashboard)
        for f in flows or ():
            self.add_flow(f)
        self._hooks = Hooks(on_event)
        self._queue: SimpleQueue[Any] = SimpleQueue()  # tasks, or None to stop a thread
        self._telemetry = telemetry_for(self.id, self._queue.qsize)  # OpenTelemetry, or None: decided once per worker
        self._lock = threading.Lock()
        self._active: dict[str, tuple[Job, JobCall]] = {}
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self._contexts: dict[type, Any] = {}
        # Keyed by the (context, plan) objects themselves, never by their ids (see caches.py).
        self._injectors: IdentityCache[dict[str, Callable[[], Any]]] = IdentityCache(INJECTOR_CACHE_SIZE)
        self._worker_cache = ScopeCache(f"worker {self.id}")
        self._worker_spaces: dict[tuple[str, str], StateSpace] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        if blas_threads is UNSET:
            blas_threads = 1 if self.threads > 1 else None
        self._blas = blas_threads
        if blas_threads is not None:
            from . import blas

            blas.acquire(blas_threads)
        self._pool = [
            threading.Thread(target=self._serve, name=f"{self.id}-{n}", daemon=True) for n in range(self.threads)
        ]
        self._thread_caches = ThreadCaches(owned=self._pool)
        # Bound methods handed to every job, made once (each would be a new object per job).
        self._thread_cache_fn = self._thread_caches.get
        self._worker_space_fn = self._worker_space
        self._cancel_fn = self._cancel
        self._emit_fn = self._hooks.emit
        for t in self._pool:
            t.start()
        self._heartbeat_stop = threading.Event()
        if self.store.persistent:
            self.store.heartbeat(self.id, os.getpid(), socket.gethostname(), time.time(), self.lease)
            threading.Thread(target=self._beat, name=f"{self.id}-heartbeat", daemon=True).start()

    # -- public API -----------------------------------------------------------------------

    def add_flow(self, flow: Flow | Node) -> Flow:
        """Make ``flow`` known by name, for `resume` and `recover`."""
        f = flow.as_flow() if isinstance(flow, Node) else flow
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
        """A job per inputs, or (``keep_errors``) the error of inputs that cannot start one; else nothing is left running."""
        started: list[Job | AetherFlowError] = []
        try:
            for inputs in many_inputs:
                try:
                    started.append(self._start(prepared, inputs))
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
            live = self._active.get(job_id, (None, None))[0]
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
        plan.check_inputs(values, name)
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
            self._closed = True
            while self._active:
                self._idle.wait(0.05)
        for _ in self._pool:
            self._queue.put(None)
        for t in self._pool:
            t.join()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join()
            self._loop.close()
        self._thread_caches.close_others()  # of threads that are not the worker's own (loop, callers of run)
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
        _cancel_all([job for job, _ in list(self._active.values()) if job.status is not JOB_SUSPENDED])

    def __repr__(self) -> str:
        return f"<Worker {self.id} threads={self.threads} store={self.store.url}>"

    # -- starting jobs ----------------------------------------------------------------------

    def _prepare(self, flow: Flow | Node, context: Any) -> _Prepared:
        """What every job of ``flow`` in ``context`` shares: resolved once, for `map`'s many jobs."""
        self._refuse_if_closed()  # before a job is recorded that would never run
        f = as_flow(flow, "submit(flow)")  # a non-flow is a UsageError, not an AttributeError
        ctx = self._context_for(f, context)
        plan = f.graph.bind(provider_names(ctx))
        observed = self._hooks.wanted()
        return _Prepared(f, f.name, ctx, plan, self._injectors_for(ctx, plan), observed)

    def _start(self, prepared: _Prepared, inputs: Mapping[str, Any] | None, first_here: bool = False) -> Job:
        f, name, _, plan, _, _ = prepared
        values = job_inputs(inputs)  # a mapping with str keys, else UsageError
        plan.check_inputs(values, name)
        if (
            self.store.persistent and self._topologies.get(name) is not f.graph
        ):  # once per flow here: the dashboard draws its jobs
            self._topologies[name] = f.graph
            self.store.remember_topology(name, topology_json(f.graph))
        job_id = new_job_id()
        stored = self._storable_inputs(plan, values)
        if self._check_value is not None:
            self._check_inputs_storable(self._check_value, stored)
        try:
            self.store.create_job(job_id, name, stored, self.id, time.time(), running=True)
        except KeyboardInterrupt:  # Ctrl-C while recording it: the job never started, and never will
            with contextlib.suppress(Exception):
                self.store.set_job_status(
                    job_id, JobStatus.CANCELLED, time.time(), error="interrupted while it was being submitted"
                )
            raise
        run = JobRun(job_id, f.graph, plan, values)
        return self._launch(prepared, run, run.start(), first_here=first_here)

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
        job = Job(run.job_id, prepared.flow, run, self._cancel_fn)
        job._status = JOB_COMPLETED
        job._finished(output, None)
        return job

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
        flow, name, ctx, _, injectors, observed = prepared
        job = Job(run.job_id, flow, run, self._cancel_fn)
        scopes = JobScopes(self._worker_cache, run.job_id, self._thread_cache_fn)
        call = JobCall(
            run,
            self.id,
            name,
            injectors,
            scopes,
            self._worker_space_fn,
            self._check_value,
            context=ctx,
            observed=observed,
            record_run=self.store.run_recorder(run.job_id),
            emit=self._emit_fn,
        )
        if self._telemetry is not None:  # OpenTelemetry: the job's span (tracing.py)
            call.trace = self._telemetry.start_job(run.job_id, name, resumed)
        self._active[job.id] = (job, call)  # atomic; no lock on the per-job path
        job._status = JOB_RUNNING
        if self._hooks:
            self._hooks.emit("job_started", job=job.id, flow=name)
        if ended or not ready:  # a resumed job whose every reachable vertex had completed
            self._finish(job, call)
            return job
        for i in ready[1:] if first_here else ready:
            self._queue.put((call, job, i, -1))
        if first_here:
            self._execute_here((call, job, ready[0], -1))
        return job

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise AetherFlowError(f"Worker {self.id} is closed; create a new Worker to run more jobs.")

    def _execute_here(self, task: _Task) -> None:
        """Run a task on the calling thread (see `run`)."""
        try:
            self._execute(task, threading.current_thread().name)
        except BaseException as exc:  # Ctrl-C while a node runs here, or a bug: end the job first
            self._fail_task(task, exc)
            raise

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

    # -- running nodes ----------------------------------------------------------------------

    def _serve(self) -> None:
        get = self._queue.get
        thread = threading.current_thread().name
        while True:
            task = get()
            if task is None:
                break
            try:
                self._execute(task, thread)
            except BaseException as exc:  # a bug here must not kill the thread or hang the job
                log.critical("AetherFlow internal error while running a node", exc_info=True)
                self._fail_task(task, exc)
            task = None  # an idle thread must not keep its last job alive
        self._thread_caches.close_current()  # thread-scoped instances are torn down on their own thread

    def _execute(self, task: Any, thread: str) -> None:
        call, job, i, k = task
        run = job.run
        # The per-node loop: a chain runs thousands of times round it, so what it reads
        # per node is bound here (a one-node job pays for each name too: only the hot ones).
        plain, vertices, status, runs = run.graph.plain, run.plan.vertices, run.status, run.runs
        here = self._calls_here
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
                outcome: Outcome | BaseException = call_node(
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

    # Whether nodes are called on this process's threads and loop; `aetherflow.dask.DaskWorker`
    # sends them to the cluster instead (`_send_node`).
    _calls_here = True

    def _send_node(self, call: JobCall, job: Job, i: int, k: int, started: float) -> None:
        raise NotImplementedError("a worker that does not call nodes here sends them elsewhere")

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

    def _run_async(self, task: _Task) -> None:
        loop = self._event_loop()
        asyncio.run_coroutine_threadsafe(self._acall(task), loop)

    async def _acall(self, task: _Task) -> None:
        call, job, i, k = task
        run = job.run
        run.began(i)
        if call.observed:
            self._started(job, i, k)
        started = time.time()
        try:
            outcome: Outcome | BaseException = await acall_node(
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

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    loop = asyncio.new_event_loop()
                    started = threading.Event()

                    def serve() -> None:
                        asyncio.set_event_loop(loop)
                        loop.call_soon(started.set)
                        loop.run_forever()

                    self._loop_thread = threading.Thread(target=serve, name=f"{self.id}-asyncio", daemon=True)
                    self._loop_thread.start()
                    started.wait()
                    self._loop = loop
        return self._loop

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

    # -- scopes and state ----------------------------------------------------------------------

    def _worker_space(self, flow: str, node: str) -> StateSpace:
        key = (flow, node)
        space = self._worker_spaces.get(key)
        if space is None:
            with self._lock:
                space = self._worker_spaces.setdefault(key, StateSpace(StateScope.WORKER, f"{flow}/{node}"))
        return space

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

    def _beat(self) -> None:
        while not self._heartbeat_stop.wait(self.lease / 3):
            try:
                self.store.heartbeat(self.id, os.getpid(), socket.gethostname(), time.time(), self.lease)
                for job_id in (
                    self.store.cancel_requests(list(self._active)) if self._active else ()
                ):  # from the dashboard
                    if (entry := self._active.get(job_id)) is not None:
                        entry[0].cancel()
                for job_id in (
                    self.store.taken_over(list(self._active)) if self._active else ()
                ):  # paused past the lease
                    self._let_go(job_id)
            except Exception:
                log.warning("Heartbeat of %s failed", self.id, exc_info=True)


def _forget(_: object) -> None:
    """Where the runs of a job taken over by another process go: nowhere."""


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
