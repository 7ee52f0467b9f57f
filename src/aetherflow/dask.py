"""Scale-out: `DaskWorker` runs nodes as tasks on a `dask.distributed` cluster.

The scheduler, the store and every commit stay in the driver. A node call travels to a
Dask worker with what it reads (the outputs it names, its inputs, snapshots of
``job_state``/``node_state``/``worker_state`` with their versions); it comes back with its
output and its write-sets, which the driver commits with the usual rules, re-sending the
node when a read-then-set lost a race. So state semantics do not change.

Scopes on the cluster (a worker plugin holds them on each Dask worker):

- `WorkerScoped`: one per Dask worker, torn down when that worker closes;
- `ThreadLocalSingleton`: one per Dask worker thread;
- `JobScoped` / `NodeScoped`: one per (Dask worker, job) / (Dask worker, job, node),
  torn down on every Dask worker when the job ends;
- `Singleton`: one per Dask worker *process* — guarded there, but not shared across
  machines (nothing in-process can be).

Nodes, inputs and outputs travel with cloudpickle. The context travels as the driver's
instance is at submit (shipping.py), scattered once to every Dask worker rather than sent
with each task; each Dask worker process keeps one instance per version of it, so a
`Singleton` is one per process.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
import weakref
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

try:
    import cloudpickle
    import distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "Running on Dask needs dask.distributed. Install it with: pip install 'aetherflow[dask]'"
    ) from exc

from .caches import IdentityCache
from .errors import AetherFlowError, NodeError, StateConflictError, Suspend
from .graph import B_JOIN, B_NODE, B_PROVIDER, B_WORKER_STATE, VertexPlan
from .invoke import JobCall, Outcome, acall_node, call_node
from .providers import injector_of
from .runner import LocalRunner
from .runs import RunFields
from .scopes import JobScopes, Scope, ScopeCache, ThreadCaches
from .sentinels import UNSET
from .shipping import ShippedContext, ship_context, unship
from .state import Commit, StateConflict, StateHandle, StateScope, StateSpace, commit
from .tracing import remote_parent
from .worker import Worker

if TYPE_CHECKING:
    from .driver import Driver

PLUGIN = "aetherflow"
log = logging.getLogger("aetherflow.dask")
# Vertex plans kept pickled on the driver and unpickled on each Dask worker, oldest dropped first.
VERTEX_CACHE_SIZE = 1024


class ContextNotImportableError(AetherFlowError, TypeError):
    """A context class that a Dask worker could not import."""


@dataclass
class _Snapshot:
    """One node call, as sent to a Dask worker."""

    # The vertex travels as bytes with a key: a Dask worker unpickles it once and caches it
    # (unpickling rebuilds its pydantic validators, which costs more than a small task).
    vp_key: str
    vp_blob: bytes
    name: str
    job_id: str
    flow: str
    iteration: int
    item: Any
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    context: str | None  # the key of the context's shipment, which travels beside the snapshot (scattered)
    state: dict[str, dict[str, tuple[Any, int]]]  # "job" / "node" / "worker" -> entries
    answer: Any = UNSET  # the answer to a suspension, when this call resumes it
    trace: dict[str, str] | None = None  # the W3C context of the driver's node span, when traced (tracing.py)


@dataclass
class _Returned:
    """What comes back: the outcome, or the error, and the write-sets to commit."""

    output: Any = UNSET
    attempt: int = 1
    error: BaseException | None = None
    writesets: list[tuple[str, Any, Any]] = field(default_factory=list)  # (scope, ops, reads)
    where: str = ""
    failed_attempts: list[RunFields] = field(default_factory=list)  # recorded by the driver
    started: float = 0.0  # when the last attempt started, after any failed ones (0.0: not known)


class _View:
    """The `RunView` a node call reads on a Dask worker: snapshots of the driver's job."""

    def __init__(self, snap: _Snapshot) -> None:
        self.job_id = snap.job_id
        self.inputs = snap.inputs
        self.outputs = snap.outputs
        self.job_space = _space(StateScope.JOB, "", snap.state.get("job", {}))
        self._node = _space(StateScope.NODE, snap.name, snap.state.get("node", {}))
        self.worker = _space(StateScope.WORKER, f"{snap.flow}/{snap.name}", snap.state.get("worker", {}))
        self._answer = snap.answer

    def answer_to(self, i: int, iteration: int, item: int | None, default: Any) -> Any:
        return default if self._answer is UNSET else self._answer

    def node_space(self, name: str) -> StateSpace:
        return self._node


def _space(scope: StateScope, namespace: str, entries: dict[str, tuple[Any, int]]) -> StateSpace:
    space = StateSpace(scope, namespace)
    space.entries.update(entries)
    return space


class AetherFlowPlugin(WorkerPlugin):  # type: ignore[misc]
    """Holds AetherFlow's scopes on one Dask worker: contexts, worker/thread/job caches."""

    name = PLUGIN

    def setup(self, worker: Any) -> None:
        self.address = getattr(worker, "address", "dask")
        self.cache = ScopeCache(f"dask worker {self.address}")
        self.contexts: dict[str, Any] = {}
        self.vertices: dict[str, VertexPlan] = {}
        self.jobs: dict[str, ScopeCache] = {}  # job caches of jobs that use job/node scopes
        self.threads = ThreadCaches()
        self._lock = threading.Lock()

    def teardown(self, worker: Any) -> None:
        for cache in list(self.jobs.values()):
            cache.close()
        self.threads.close_others()
        self.cache.close()

    def context(self, key: str | None, shipped: ShippedContext | None) -> Any:
        """The one instance of a shipped context on this Dask worker, whichever job sends it."""
        if key is None or shipped is None:
            return None
        ctx = self.contexts.get(key)
        if ctx is None:
            with self._lock:  # one instance per key, so a Singleton is one per process
                ctx = self.contexts.get(key)
                if ctx is None:
                    try:
                        made = unship(shipped)
                    except (ImportError, AttributeError) as exc:
                        raise ContextNotImportableError(
                            f"Dask worker {self.address} cannot import the context {shipped.name}: {exc}. It travels "
                            "by reference because its module is importable where the flow runs: install that module "
                            "on the Dask workers, or call cloudpickle.register_pickle_by_value(module) before "
                            "submitting to send it by value."
                        ) from None
                    ctx = self.contexts[key] = made() if isinstance(made, type) else made
        return ctx

    def vertex(self, key: str, blob: bytes) -> VertexPlan:
        vp = self.vertices.get(key)
        if vp is None:
            vp = self.vertices[key] = cloudpickle.loads(blob)
            while len(self.vertices) > VERTEX_CACHE_SIZE:  # every task carries its blob: evicting is safe
                self.vertices.pop(next(iter(self.vertices)), None)
        return vp

    def scopes(self, job_id: str) -> JobScopes:
        return _RemoteJobScopes(self, job_id)

    def job_cache(self, job_id: str) -> ScopeCache:
        with self._lock:
            cache = self.jobs.get(job_id)
            if cache is None:
                cache = self.jobs[job_id] = ScopeCache(f"job {job_id} on {self.address}")
        return cache

    def end_job(self, job_id: str) -> None:
        with self._lock:
            cache = self.jobs.pop(job_id, None)
        if cache is not None:
            cache.close()


class _RemoteJobScopes(JobScopes):
    """A job's scopes on a Dask worker: its job cache outlives one task (kept by the plugin)."""

    __slots__ = ("plugin",)

    def __init__(self, plugin: AetherFlowPlugin, job_id: str) -> None:
        super().__init__(plugin.cache, job_id, plugin.threads.get)
        self.plugin = plugin

    @property
    def job(self) -> ScopeCache:
        return self.plugin.job_cache(self.job_id)


def _plugin() -> AetherFlowPlugin:
    plugin: Any = distributed.get_worker().plugins[PLUGIN]
    return plugin  # type: ignore[no-any-return]


def _run_remote(snap: _Snapshot, shipped: ShippedContext | None) -> _Returned:
    """Runs on a Dask worker: one node call to its outcome, writes kept for the driver.

    ``shipped`` is the context scattered to the Dask workers: Dask hands each task the copy
    its worker already holds, so the context's bytes cross the network once per worker.
    """
    plugin = _plugin()
    view = _View(snap)
    ctx = plugin.context(snap.context, shipped)
    vp = plugin.vertex(snap.vp_key, snap.vp_blob)
    injectors = {}
    for b in vp.bindings:
        if b.kind == B_PROVIDER:
            provider = ctx.providers[b.key]
            injectors[b.key] = injector_of(provider)
    deferred: list[StateHandle] = []

    def defer(handles: list[StateHandle], job_id: str, node: str) -> list[Commit]:
        deferred[:] = handles
        return []

    failed: list[RunFields] = []  # attempts that failed before the last one, for the driver's store
    call = JobCall(
        view,
        f"dask:{plugin.address}",
        snap.flow,
        injectors,
        plugin.scopes(snap.job_id),
        lambda f, n: view.worker,
        None,
        defer,
        record_run=failed.append,
    )
    try:
        with remote_parent(snap.trace):  # a user's spans in the node nest under the driver's node span
            if vp.node.is_async:
                outcome = asyncio.run(acall_node(call, vp, snap.iteration, snap.item))
            else:
                outcome = call_node(call, vp, snap.iteration, snap.item)
    except (NodeError, Suspend) as exc:
        return _Returned(
            error=exc, where=plugin.address, failed_attempts=failed, started=getattr(exc, "attempt_started", 0.0)
        )
    writesets = [(h.space.scope.value, *h.writeset()) for h in deferred]
    output, _, attempt, started = outcome
    return _Returned(output, attempt, None, writesets, plugin.address, failed, started if failed else 0.0)


def _end_job(job_id: str, dask_worker: Any = None) -> None:
    plugin: Any = (dask_worker or distributed.get_worker()).plugins.get(PLUGIN)
    if plugin is not None:
        plugin.end_job(job_id)


@dataclass
class _Sending:
    """A node call away on the cluster: what the driver's loop held on to, plus what the trip adds.

    The loop's ``(driver, vertex, item, started)`` cannot stay on a thread's stack while the
    task is away, and a trip adds two facts of its own: how many times a lost state race
    sent it again, and the node's span, open while the task is away.
    """

    driver: Driver
    i: int
    k: int
    started: float
    conflicts: int = 0
    span: Any = None  # the node's span while the task is away, when traced (tracing.py)


@dataclass
class _Arrived:
    """A finished Dask task, queued as ``(arrived, vertex, item)`` for the runner's threads to commit and continue."""

    runner: DaskRunner
    sending: _Sending
    future: Any
    error: BaseException | None

    def step(self, vertex: int, item: int, thread: str) -> None:
        self.runner._arrived(self, thread)

    def fail(self, vertex: int, exc: BaseException) -> None:
        self.sending.driver.fail(vertex, exc)


def returned_where(arrived: _Arrived) -> str:
    """The Dask worker that ran the task: the thread column of the node run."""
    try:
        result = arrived.future.result(timeout=0) if arrived.future is not None else None
    except Exception:  # noqa: BLE001 - the task failed: no address to report
        return "dask"
    return f"dask:{result.where}" if isinstance(result, _Returned) and result.where else "dask"


class DaskRunner(LocalRunner):
    """A runner that sends node calls to a Dask cluster; its threads commit what comes back and continue the job."""

    calls_here = False

    def __init__(self, client_or_address: Any) -> None:
        super().__init__()
        if isinstance(client_or_address, distributed.Client):
            self.client, self._owns_client = client_or_address, False
        else:
            self.client, self._owns_client = distributed.Client(client_or_address), True  # type: ignore[no-untyped-call]
        self.client.register_plugin(AetherFlowPlugin(), name=PLUGIN)
        self.id = "dask"  # the worker's id once it starts the runner: part of each vertex's cache key
        self._blobs: IdentityCache[tuple[str, bytes]] = IdentityCache(VERTEX_CACHE_SIZE)
        self._blob_serial = itertools.count()
        self._outbox: SimpleQueue[tuple[_Sending, _Snapshot, Any] | None] = SimpleQueue()
        # Per context instance: its last shipment and the future of its copy scattered to the Dask
        # workers. Dropped with the instance or replaced by a change; Dask frees a copy no task needs.
        self._scattered: weakref.WeakKeyDictionary[Any, tuple[ShippedContext, Any]] = weakref.WeakKeyDictionary()
        self._scatter_lock = threading.Lock()
        self._dispatcher = threading.Thread(target=self._dispatch, name="aetherflow-dask-dispatch", daemon=True)
        self._dispatcher.start()

    def start(self, name: str, threads: int) -> None:
        self.id = name
        super().start(name, threads)

    def accepts(self, context: Any, flow: str) -> None:
        # At each submit, map and resume, before a job is recorded: the context as it is now, or
        # its refusal. A new or changed context is scattered to every Dask worker here, once.
        self._shipment(context, ship_context(context, flow))

    def _shipment(self, context: Any, shipped: ShippedContext) -> tuple[ShippedContext, Any]:
        """``context``'s shipment and the future of its scattered copy (scattering it if it is new)."""
        with self._scatter_lock:
            current = self._scattered.get(context)
            if current is None or current[0] is not shipped or current[1].status in ("lost", "cancelled", "error"):
                scattered = self.client.scatter({f"aetherflow-context-{shipped.key}": shipped}, broadcast=True)  # type: ignore[no-untyped-call]
                [future] = scattered.values()
                current = self._scattered[context] = (shipped, future)
        return current

    def send(self, driver: Driver, vertex: int, item: int, started: float) -> None:
        # Never blocks a worker thread: the task's result comes back through the queue.
        self._send(_Sending(driver, vertex, item, started))

    def _send(self, sending: _Sending) -> None:
        call, run = sending.driver.call, sending.driver.run
        vp = run.plan.vertices[sending.i]
        item = run.map_items[sending.i][sending.k] if sending.k >= 0 else UNSET  # type: ignore[index]  # k >= 0: start_map set them
        key, blob = self._vertex_blob(run.plan.flow, vp)
        shipment = self._context_ref(call)
        snap = _Snapshot(
            key,
            blob,
            vp.name,
            run.job_id,
            call.flow,
            run.runs[sending.i],
            item,
            run.inputs,
            _needed_outputs(vp, run.outputs),
            None if shipment is None else shipment[0].key,
            self._state_snapshot(call, vp),
            run.answer_to(sending.i, run.runs[sending.i], sending.k if sending.k >= 0 else None, UNSET),
        )
        if call.trace is not None:  # traced: the span starts here and its context travels with the task
            sending.span = call.trace.begin(
                vp.name, run.runs[sending.i], sending.conflicts + 1, sending.k if sending.k >= 0 else None
            )
            snap.trace = call.trace.carrier(sending.span)
        self._outbox.put((sending, snap, None if shipment is None else shipment[1]))

    def _dispatch(self) -> None:
        """Send queued calls in batches: one `client.map` per batch, as Dask's own map does."""
        while True:
            first = self._outbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 1000:
                try:
                    more = self._outbox.get_nowait()
                except Empty:
                    break
                if more is None:
                    self._outbox.put(None)  # stop after this batch
                    break
                batch.append(more)
            self._submit_batch(batch)

    def _submit_batch(self, batch: list[tuple[_Sending, _Snapshot, Any]]) -> None:
        try:
            futures = self.client.map(
                _run_remote, [snap for _, snap, _ in batch], [ctx for _, _, ctx in batch], pure=False, retries=2
            )
        except Exception:  # noqa: BLE001 - one bad value must not sink the batch: send them singly
            if len(batch) == 1:
                sending = batch[0][0]
                self.put((_Arrived(self, sending, None, sys.exc_info()[1]), sending.i, sending.k))
                return
            for one in batch:
                self._submit_batch([one])
            return
        for (sending, _, _), future in zip(batch, futures, strict=True):
            future.add_done_callback(lambda f, s=sending: self.put((_Arrived(self, s, f, None), s.i, s.k)))  # type: ignore[no-untyped-call]

    def _arrived(self, arrived: _Arrived, thread: str) -> None:
        """Commit a returned task's write-sets (sending it again after a lost state race), then let its driver go on."""
        s = arrived.sending
        driver = s.driver
        traced = driver.call.trace is not None  # the span is None when the job was sampled out
        vp = driver.run.plan.vertices[s.i]
        failed, returned = self._returned(arrived, vp)  # failed: attempts that failed on the cluster before the last
        outcome: Outcome | BaseException
        if isinstance(returned, BaseException):
            outcome = returned
        else:
            handles = [
                StateHandle.from_writeset(self._space_for(driver.call, vp, scope), ops, reads)
                for scope, ops, reads in returned.writesets
            ]
            try:
                outcome = (
                    returned.output,
                    commit(handles, driver.run.job_id, vp.name),
                    returned.attempt,
                    returned.started or s.started,
                )
            except StateConflict as exc:
                # A read-then-set lost a race: send the node again, as a local one is re-run.
                s.conflicts += 1
                if traced:  # this attempt's span ends here; the re-send has its own
                    self._end_span(s, exc, failed)
                if s.conflicts <= vp.node.conflict_retries:
                    self._send(s)
                    return
                outcome = StateConflictError(
                    f"{exc}; gave up after {vp.node.conflict_retries} re-runs.", node=vp.name, job_id=driver.run.job_id
                )
                outcome.__cause__ = exc
                driver.returned(s.i, s.k, s.started, returned_where(arrived), outcome)
                return
        if traced:  # end the node's span with the task's outcome
            self._end_span(s, outcome, failed)
        driver.returned(s.i, s.k, s.started, returned_where(arrived), outcome)

    def _returned(self, arrived: _Arrived, vp: VertexPlan) -> tuple[list[RunFields], _Returned | BaseException]:
        """The task's failed attempts, now recorded, and what it brought back: a completed call, or its error."""
        s = arrived.sending
        try:
            if arrived.error is not None:
                raise arrived.error
            returned: _Returned = arrived.future.result()
        except Exception as exc:  # noqa: BLE001 - reported as the node's error
            error = NodeError(
                f"could not run on the Dask cluster: {type(exc).__name__}: {exc}",
                node=vp.name,
                job_id=s.driver.run.job_id,
            )
            error.__cause__ = exc
            return [], error
        item = s.k if s.k >= 0 else None
        for fields in returned.failed_attempts:  # RunFields: the item index is last
            self._record_failed_attempt(s.driver.call, (*fields[:-1], item))
        if returned.error is not None and returned.started:  # lost with the error's pickling: recorded from then
            returned.error.attempt_started = returned.started  # type: ignore[attr-defined]
        return returned.failed_attempts, returned if returned.error is None else returned.error

    def _end_span(self, s: _Sending, outcome: Any, failed: list[RunFields]) -> None:
        """Traced: the attempts that failed on the cluster as spans of their own, then the task's span."""
        trace, name = s.driver.call.trace, s.driver.run.graph.names[s.i]
        for fields in failed:
            _, iteration, attempt, _, _, started, ended, _, _, error, _, _ = fields  # RunFields, in `RunFacts` order
            trace.record_attempt(name, iteration, attempt, s.k if s.k >= 0 else None, started, ended, error or "")
        if s.span is not None:
            s.span.set_attribute(
                "aetherflow.attempt", outcome[2] if isinstance(outcome, tuple) else getattr(outcome, "attempt", 1)
            )
        trace.end(s.span, name, s.started, outcome[1] if isinstance(outcome, tuple) else outcome)

    def _record_failed_attempt(self, call: JobCall, fields: RunFields) -> None:
        try:
            call.record_run(fields)
        except Exception:  # the node's outcome still counts; the log has the failure
            log.error("Could not record a failed attempt of '%s' in job %s", fields[0], call.run.job_id, exc_info=True)

    def _vertex_blob(self, flow: str, vp: VertexPlan) -> tuple[str, bytes]:
        entry = self._blobs.get(vp, None)
        if entry is None:  # a serial number, not id(vp): a freed plan's id is reused, its key must not be
            entry = self._blobs.put(
                vp, None, (f"{self.id}:{flow}:{vp.name}:{next(self._blob_serial)}", cloudpickle.dumps(vp))
            )
        return entry

    def _context_ref(self, call: JobCall) -> tuple[ShippedContext, Any] | None:
        """The job's context as last shipped (at the last submit that used it) and the future of its scattered copy."""
        if call.context is None:
            return None
        current = self._scattered.get(call.context)
        if current is not None and current[1].status == "finished":
            return current
        return self._shipment(call.context, current[0] if current else ship_context(call.context, call.flow))

    def _state_snapshot(self, call: JobCall, vp: VertexPlan) -> dict[str, dict[str, tuple[Any, int]]]:
        run = call.run
        out = {"job": _entries(run.job_space), "node": _entries(run.node_space(vp.name))}
        if any(b.kind == B_WORKER_STATE for b in vp.bindings):
            out["worker"] = _entries(call.worker_space(call.flow, vp.name))
        return out

    def _space_for(self, call: JobCall, vp: VertexPlan, scope: str) -> StateSpace:
        if scope == StateScope.JOB.value:
            return call.run.job_space
        if scope == StateScope.NODE.value:
            return call.run.node_space(vp.name)
        return call.worker_space(call.flow, vp.name)

    def job_ended(self, call: JobCall) -> None:
        super().job_ended(call)
        if _uses_job_scopes(call):
            self.client.run(_end_job, call.run.job_id)

    def close(self) -> None:
        super().close()
        self._outbox.put(None)
        self._dispatcher.join()
        if self._owns_client:
            self.client.close()  # type: ignore[no-untyped-call]


class DaskWorker(Worker):
    """A `Worker` whose nodes run as tasks on a Dask cluster (through a `DaskRunner`); the scheduler stays here.

    >>> from distributed import LocalCluster
    >>> with LocalCluster(n_workers=2) as cluster, DaskWorker(cluster.scheduler_address) as worker:
    ...     print(worker.map(flow, [{"n": i} for i in range(100)]))
    """

    def __init__(self, client_or_address: Any, context: Any = None, *, threads: int = 8, **options: Any) -> None:
        runner = DaskRunner(client_or_address)
        self.client = runner.client
        options.setdefault("blas_threads", None)  # the Dask workers' processes do the math
        super().__init__(context, threads=threads, runner=runner, **options)


def _uses_job_scopes(call: JobCall) -> bool:
    from .providers import scope_of

    return any(scope_of(getattr(p, "__self__", p)) in (Scope.JOB, Scope.NODE) for p in call.injectors.values())


def _needed_outputs(vp: VertexPlan, outputs: dict[str, Any]) -> dict[str, Any]:
    names = [b.key for b in vp.bindings if b.kind == B_NODE] + [
        k for b in vp.bindings if b.kind == B_JOIN for k in b.key
    ]
    return {n: outputs[n] for n in names if n in outputs}


def _entries(space: StateSpace) -> dict[str, tuple[Any, int]]:
    with space.lock:
        return dict(space.entries)
