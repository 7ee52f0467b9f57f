"""One job's progress through its graph: which vertices are ready, skipped, running or done.

No super-steps: a vertex becomes ready the moment every forward predecessor has
*settled* (completed or skipped) — a successor of a fast branch never waits for a slow
sibling. Each predecessor sends one signal per run; a vertex inside a loop is armed
again after it starts, waiting for the predecessors that run again in the loop.

`JobRun` only decides; it never calls nodes. Its methods take the job's lock, update the
counters, and return the vertices that became ready, which the worker then runs.
What it reads of the graph besides the topology is a `Schedule`, derived once per graph.
"""

from __future__ import annotations

import threading
from typing import Any

from .errors import LoopLimitError, NodeError, short_repr
from .graph import Graph, Plan, Topology
from .graph.topology import reach
from .sentinels import UNSET
from .state import StateScope, StateSpace
from .status import JobStatus, NodeStatus

# Enum members read once: in Python 3.11 `NodeStatus.X` costs ~10x a global (EnumType.__getattr__).
PENDING, RUNNING, COMPLETED = NodeStatus.PENDING, NodeStatus.RUNNING, NodeStatus.COMPLETED
JOB_COMPLETED = JobStatus.COMPLETED


class Schedule:
    """What the scheduler reads of a graph besides its topology, indexed by vertex number.

    Derived once per graph (`Graph.derived(Schedule)`), shared by every job of the flow.
    """

    __slots__ = ("link", "no_runs", "rearm", "sinks", "sole_sink", "sources", "terminal", "waiting_at_start")

    def __init__(self, graph: Topology) -> None:
        n = len(graph.names)
        pred_counts = [len(p) for p in graph.preds]
        loops = any(graph.back_targets)
        # Sources start the job; each other vertex first waits for a signal from every forward predecessor.
        self.sources = [i for i, count in enumerate(pred_counts) if count == 0]
        # What every job's counters start from (copied per job: cheaper than built).
        self.waiting_at_start = dict(enumerate(pred_counts))
        self.no_runs = dict.fromkeys(range(n), 0)
        # After it starts, a vertex inside a loop is armed again: it waits for the signals of
        # the predecessors that run again in the loop (none, outside loops).
        self.rearm = [len(lp) for lp in _loop_preds(graph)] if loops else [0] * n
        # The chain links: the scheduler's fast path (see `_links`).
        self.link = [-1] * n if loops else _links(graph, pred_counts)
        # The job's result: the sole sink's output, else {sink: output} of those that ran.
        self.sinks = [i for i, succs in enumerate(graph.succs) if not succs and graph.branches[i] is None]
        # Whether a vertex's completion can end the job: nothing follows it (see `JobRun.completed_last`).
        self.terminal = [not succs and graph.branches[i] is None for i, succs in enumerate(graph.succs)]
        self.sole_sink = graph.names[self.sinks[0]] if len(self.sinks) == 1 else None


def _links(graph: Topology, pred_counts: list[int]) -> list[int]:
    """Per vertex, its chain successor, or -1 (in a graph without loops).

    A link ``i -> s``: ``s`` is ``i``'s only successor, ``i`` is ``s``'s only predecessor,
    and ``i`` chooses no branch. When ``i`` completes, ``s`` is ready at once, without
    counting signals.
    """
    link = [-1] * len(graph.names)
    for i, succs in enumerate(graph.succs):
        if len(succs) == 1 and graph.branches[i] is None:
            s = succs[0]
            if pred_counts[s] == 1:
                link[i] = s
    return link


def _loop_preds(graph: Topology) -> list[list[int]]:
    """Per vertex, the predecessors that run again in a loop (they re-trigger it)."""
    in_loop: set[int] = set()
    for sw, targets in enumerate(graph.back_targets):
        if targets:
            upstream = reach([sw], graph.preds)
            for t in targets:
                in_loop |= reach([t], graph.succs) & upstream
    # Anything downstream of a loop vertex re-runs when that vertex runs again.
    affected = reach(in_loop, graph.succs)
    return [
        [p for p in graph.preds[i] if p in in_loop or p in affected] if i in affected else []
        for i in range(len(graph.names))
    ]


class JobRun:
    """The scheduler state of one job (guarded by ``lock``).

    Counters live in dicts of ints and bytearrays, which the cyclic garbage collector does
    not track: a worker holding thousands of jobs must not make every collection walk them.
    """

    __slots__ = (
        "_again",
        "_busy",
        "_got",
        "_heard",
        "_job_space",
        "_maps",
        "_skipped_any",
        "_waiting",
        "answer",
        "error",
        "graph",
        "in_flight",
        "inputs",
        "job_id",
        "lock",
        "map_items",
        "node_spaces",
        "outputs",
        "plan",
        "runs",
        "schedule",
        "status",
        "stopped",
        "suspended",
    )

    def __init__(self, job_id: str, graph: Graph, plan: Plan, inputs: dict[str, Any]) -> None:
        n = len(graph.names)
        schedule = graph.derived(Schedule)
        self.job_id = job_id
        self.graph = graph
        self.schedule = schedule
        self.plan = plan
        self.inputs = inputs
        self.lock = threading.Lock()
        self.outputs: dict[str, Any] = {}
        self.status = [PENDING] * n
        self.runs = schedule.no_runs.copy()  # a dict of ints is not tracked by the GC
        self.stopped: JobStatus | None = None  # FAILED / CANCELLED / SUSPENDED once decided
        self.error: BaseException | None = None
        self.suspended: tuple[str, str] | None = None  # (node, reason)
        self.answer: tuple[int, int, int | None, Any] | None = (
            None  # (vertex, iteration, item, value): the answer to a suspension
        )
        self.in_flight = 0
        self._waiting = schedule.waiting_at_start.copy()
        self._got = bytearray(n)
        self._busy = bytearray(n)  # queued or running: a vertex never runs concurrently with itself
        # The dicts below serve loops and maps only: None until one needs them (most jobs
        # have neither, and a job's dicts are made and freed with it).
        self._again: dict[int, int] | None = None
        # Per loop-affected vertex waiting for its signals: the predecessors heard since it last
        # settled. A predecessor that laps the loop again before the others signalled is heard
        # once (its latest output is the one read), so it cannot stand in for the others.
        self._heard: dict[int, set[int]] | None = None
        self._skipped_any = False
        self._maps: dict[int, list[Any]] | None = None  # vertex -> [results, remaining]
        self.map_items: dict[int, list[Any]] | None = None  # vertex -> the items it is mapped over
        self._job_space: StateSpace | None = None
        self.node_spaces: dict[str, StateSpace] = {}

    @property
    def job_space(self) -> StateSpace:
        space = self._job_space
        if space is None:
            with self.lock:
                if self._job_space is None:
                    self._job_space = StateSpace(StateScope.JOB)
                space = self._job_space
        return space

    # -- starting --------------------------------------------------------------------------

    def start(self) -> list[int]:
        """The sources (vertices with no forward predecessor), now running.

        Called once, on a fresh job that no other thread sees yet (hence no lock): each
        source runs for the first time, which `max_iterations >= 1` always allows.
        """
        sc = self.schedule
        ready = list(sc.sources)
        for i in ready:
            self._waiting[i] = sc.rearm[i]
            self.runs[i] = 1
            self._busy[i] = 1
        self.in_flight = len(ready)
        return ready

    def replay_item(self, node: str, item: int, output: Any) -> None:
        """Remember an item of a mapped node completed before a crash or suspension: it is not run again."""
        i = self.graph.index[node]
        with self.lock:
            self._map_entries().setdefault(i, [{}, 0])[0][item] = output

    def replayed_map(self, i: int) -> list[Any] | None:
        """The results of mapped vertex ``i`` when every item of its recorded input was replayed, else None."""
        g = self.graph
        if not g.mapped[i]:
            return None
        source = g.names[g.explicit[i][0]]
        if source not in self.outputs:
            return None
        try:
            count = len(list(self.outputs[source]))
        except TypeError:
            return None  # not iterable: the map fails again when it runs, with its error
        done = self.replayed_items(i)
        if any(k not in done for k in range(count)):
            return None
        self._map_entries().pop(i, None)  # a later iteration of a loop maps afresh
        return [done[k] for k in range(count)]

    def _map_entries(self) -> dict[int, list[Any]]:
        """The state of the job's mapped vertices, made when the first map starts (or is replayed)."""
        if self._maps is None:
            self._maps = {}
        return self._maps

    def replayed_items(self, i: int) -> dict[int, Any]:
        entry = self._maps.get(i) if self._maps is not None else None
        return entry[0] if entry is not None and isinstance(entry[0], dict) else {}

    def answer_to(self, i: int, iteration: int, item: int | None, default: Any) -> Any:
        """The answer for run ``iteration`` (item ``item``) of vertex ``i``: given only to the run resuming the suspension."""
        answer = self.answer
        if answer is not None and answer[0] == i and answer[1] == iteration and answer[2] == item:
            return answer[3]
        return default

    def give_answer(self, i: int, item: int | None, value: Any) -> None:
        """Answer the suspension of vertex ``i`` (item ``item``): its next run gets ``value`` (see `answer_to`)."""
        self.answer = (i, self.runs[i], item, value)

    def node_space(self, name: str) -> StateSpace:
        space = self.node_spaces.get(name)
        if space is None:
            space = self.node_spaces.setdefault(name, StateSpace(StateScope.NODE, name))
        return space

    # -- progress (each returns the vertices that became ready, and whether the job ended) -----

    def began(self, i: int) -> None:
        self.status[i] = RUNNING

    def completed(self, i: int, output: Any) -> tuple[list[int], bool]:
        # Runs once per node, so it is written for speed: acquire/release cost half of what
        # `with` costs, and a chain link is followed without counting signals.
        lock = self.lock
        lock.acquire()
        try:
            self._busy[i] = 0
            self.status[i] = COMPLETED
            g = self.graph
            self.outputs[g.names[i]] = output
            s = self.schedule.link[i]
            if s >= 0 and self.stopped is None and not self._skipped_any:
                # `s` waits for `i` alone and runs once: ready now. One run leaves, one enters.
                self.runs[s] = 1
                self._busy[s] = 1
                return [s], False
            ready: list[int] = []
            if self.stopped is None and (g.succs[i] or g.branches[i] is not None):
                self._signal_successors(i, output, ready)
            self.in_flight -= 1
            again = self._again
            if again and again.get(i) and self.stopped is None:
                again[i] -= 1
                self._activate(i, ready)
            if ready or self.in_flight:
                return ready, False
            return ready, self._ended(ready)
        finally:
            lock.release()

    def completed_last(self, i: int, output: Any) -> bool:
        """Complete vertex ``i`` if that ends the job, and say so; otherwise change nothing.

        It ends the job when ``i`` is the only run in flight and nothing follows it (no
        successor, no branch, no loop waiting to run it again): what `completed` would then
        do, decided before the run is recorded, so the driver records the run and the
        job's end as one write (`Store.end_job`).
        """
        lock = self.lock
        lock.acquire()  # half the cost of `with`: this runs once per job
        try:
            if self.in_flight != 1 or not self.schedule.terminal[i] or (self._again and self._again.get(i)):
                return False
            self._busy[i] = 0
            self.status[i] = COMPLETED
            self.outputs[self.graph.names[i]] = output
            self.in_flight = -1  # ended: reported exactly once, as `_ended` does
            return True
        finally:
            lock.release()

    def start_map(self, i: int, items: list[Any]) -> tuple[list[int], list[Any]]:
        """Split a mapped vertex's one task into one per item not done yet: ``(todo, results)``."""
        if self.map_items is None:
            self.map_items = {}
        self.map_items[i] = items
        with self.lock:
            done = self.replayed_items(i)
            results = [done.get(k, UNSET) for k in range(len(items))]
            todo = [k for k in range(len(items)) if k not in done]
            answer = self.answer
            if answer is not None and answer[0] == i and answer[2] in todo:  # the answered item first: another
                todo.remove(answer[2])  # item suspending again must not stop the job before it has started
                todo.insert(0, answer[2])
            if todo:
                self._map_entries()[i] = [results, len(todo)]
                self.in_flight += len(todo) - 1
            else:
                self._map_entries().pop(i, None)
        return todo, results

    def item_completed(self, i: int, k: int, output: Any) -> tuple[list[int], bool]:
        with self.lock:
            maps = self._map_entries()
            entry = maps.get(i)
            if entry is None or self.stopped is not None:
                self.in_flight -= 1
                return [], self._ended([])
            entry[0][k] = output
            entry[1] -= 1
            if entry[1] > 0:
                self.in_flight -= 1
                return [], False
            del maps[i]
        return self.completed(i, entry[0])

    def failed(self, i: int, error: BaseException, ends_job_as: JobStatus = JobStatus.FAILED) -> bool:
        """Vertex ``i`` failed; the job stops as ``ends_job_as`` (CANCELLED when the user interrupted it)."""
        with self.lock:
            self.in_flight -= 1
            self._busy[i] = 0
            self.status[i] = NodeStatus.FAILED
            self._stop(ends_job_as, error)
            return self._ended([])

    def suspend(self, i: int, reason: str) -> bool:
        with self.lock:
            self.in_flight -= 1
            self._busy[i] = 0
            self.status[i] = NodeStatus.SUSPENDED
            if self.stopped is None:
                self.suspended = (self.graph.names[i], reason)
            self._stop(JobStatus.SUSPENDED, None)
            return self._ended([])

    def dropped(self, i: int) -> bool:
        """A queued vertex that will not start because the job stopped."""
        with self.lock:
            self.in_flight -= 1
            self._busy[i] = 0
            return self._ended([])

    def cancel(self) -> bool | None:
        """Start nothing more: True when the job ends now, False when its running calls end it, None when it had ended.

        Cancel wins over a stop that has not ended the job yet (a branch that failed or
        suspended while a sibling runs): cancelled is final, never resumable.
        """
        with self.lock:
            if self.in_flight < 0:
                return None
            self.stopped = JobStatus.CANCELLED  # the error of a branch that failed first stays, for the record
            return self._ended([])

    def last_unrecorded(self, i: int, error: BaseException) -> JobStatus:
        """Vertex ``i`` ended the job (`completed_last`), but the store could not record its run: it failed.

        The job ends as it would have had the run failed: ``i`` failed with ``error``, its
        output unseen, and the job failed unless it had stopped already (a cancel stays).
        """
        with self.lock:
            self.outputs.pop(self.graph.names[i], None)
            self.status[i] = NodeStatus.FAILED
            self._stop(JobStatus.FAILED, error)
            return self.stopped  # type: ignore[return-value]  # set by _stop

    def unrecorded(self, error: BaseException) -> JobStatus:
        """The ended job completed, but the store could not record that: it ends failed, with ``error``."""
        self.stopped, self.error = JobStatus.FAILED, error
        return JobStatus.FAILED

    # -- internals (called with the lock held) ---------------------------------------------------

    def _stop(self, status: JobStatus, error: BaseException | None) -> None:
        if self.stopped is None:
            self.stopped = status
            self.error = error

    def _ended(self, ready: list[int]) -> bool:
        if self.in_flight or ready:
            return False
        self.in_flight = -1  # ended: report it exactly once
        return True

    def _signal_successors(self, i: int, output: Any, ready: list[int], replaying: bool = False) -> None:
        g = self.graph
        branches = g.branches[i]
        if branches is None:
            waiting, got, rearm = self._waiting, self._got, self.schedule.rearm
            for s in g.succs[i]:
                if rearm[s] and self._heard_again(s, i):
                    continue
                w = waiting[s] - 1
                waiting[s] = w
                got[s] = 1
                if w <= 0:
                    self._settle(s, ready)
            return
        chosen = self._choose(i, branches, output)
        if chosen is None:
            return
        loops_back = chosen in g.back_targets[i]
        for s in g.succs[i]:
            if s in g.branch_forward[i]:
                if not loops_back:
                    self._signal(s, i, s == chosen, ready)
            else:
                self._signal(s, i, True, ready)
        if loops_back:
            self._activate(chosen, ready)

    def _choose(self, i: int, branches: dict[Any, int], value: Any) -> int | None:
        try:
            chosen = branches.get(value)
        except TypeError:
            chosen = None
        if chosen is None:
            chosen = self.graph.branch_default[i]
        if chosen is None:
            name = self.graph.names[i]
            keys = ", ".join(short_repr(k) for k in branches)
            self._stop(
                JobStatus.FAILED,
                NodeError(
                    f"returned {short_repr(value, 80)}, which matches no branch (keys: {keys}). Return one of "
                    "the keys, or give branch_on({...}, default=node) a fallback.",
                    node=name,
                    job_id=self.job_id,
                ),
            )
            self.status[i] = NodeStatus.FAILED
        return chosen

    def _heard_again(self, s: int, p: int) -> bool:
        """Whether ``s`` already heard ``p`` since it last settled (and note that it has now)."""
        if self._heard is None:
            self._heard = {}
        heard = self._heard.setdefault(s, set())
        if p in heard:
            return True
        heard.add(p)
        return False

    def _signal(self, s: int, p: int, completed: bool, ready: list[int]) -> None:
        """``p`` settled (completed, or skipped when not ``completed``): one fewer signal for ``s`` to wait for."""
        if self.schedule.rearm[s] and self._heard_again(s, p):
            return
        waiting = self._waiting[s] - 1
        self._waiting[s] = waiting
        if completed:
            self._got[s] = 1
        if waiting <= 0:
            self._settle(s, ready)

    def _settle(self, s: int, ready: list[int]) -> None:
        runs_it = self._got[s] and (not self._skipped_any or not self._misses_input(s))
        self._waiting[s] = self.schedule.rearm[s]
        if self._heard:
            self._heard.pop(s, None)
        self._got[s] = 0
        if runs_it:
            if self.stopped is None and not self._busy[s] and self.runs[s] < self.graph.nodes[s].max_iterations:
                self.runs[s] += 1  # the common case of _activate, inlined: this is the hottest path
                self._busy[s] = 1
                self.in_flight += 1
                ready.append(s)
            else:
                self._activate(s, ready)
        else:
            self._skipped_any = True
            if self.status[s] is NodeStatus.PENDING:
                self.status[s] = NodeStatus.SKIPPED
            for t in self.graph.succs[s]:
                self._signal(t, s, False, ready)

    def _misses_input(self, s: int) -> bool:
        outputs = self.outputs
        return any(src not in outputs and not has_default for src, has_default in self.plan.vertices[s].needs)

    def _activate(self, i: int, ready: list[int]) -> None:
        if self.stopped is not None:
            return
        if self._busy[i]:
            if self._again is None:
                self._again = {}
            self._again[i] = self._again.get(i, 0) + 1
            return
        node = self.graph.nodes[i]
        if self.runs[i] >= node.max_iterations:
            self.status[i] = NodeStatus.FAILED
            self._stop(JobStatus.FAILED, LoopLimitError(self.graph.names[i], node.max_iterations, self.job_id))
            return
        self.runs[i] += 1
        self._busy[i] = 1
        self.in_flight += 1
        ready.append(i)

    # -- results ---------------------------------------------------------------------------------

    def final_status(self) -> JobStatus:
        if self.stopped is not None:
            return self.stopped
        if PENDING in self.status:  # a C-level scan: most jobs reach every vertex
            for i, st in enumerate(self.status):
                if st is PENDING:
                    self.status[i] = NodeStatus.SKIPPED  # never reached: on a branch not taken
        return JOB_COMPLETED

    def result(self) -> Any:
        """The sole sink's output, or ``{sink: output}`` of the sinks that ran."""
        sc, names = self.schedule, self.graph.names
        if sc.sole_sink is not None:
            return self.outputs.get(sc.sole_sink)
        return {names[i]: self.outputs[names[i]] for i in sc.sinks if names[i] in self.outputs}
