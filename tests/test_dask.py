"""DaskWorker on a real LocalCluster with 2 worker processes: same results, same state rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")
from distributed import Client, LocalCluster

from aetherflow import BaseFlowContext, StateConflictError, Worker, node, providers
from aetherflow.dask import DaskWorker
from changed_contexts import each_changed_instance

# distributed warns about ports, closing comms and slow heartbeats on busy machines: not ours
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

RESOURCES = Path(__file__).parent / "resources"
sys.path.insert(0, str(RESOURCES))
import dask_flows  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, Path]]:
    log = tmp_path_factory.mktemp("dask-log")
    os.environ["AETHERFLOW_DASK_LOG"] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(RESOURCES), str(RESOURCES.parent.parent / "src"), os.environ.get("PYTHONPATH", "")]
    )
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0") as c:
        yield c, log


@pytest.fixture
def dask_worker(cluster: tuple[LocalCluster, Path]) -> Iterator[DaskWorker]:
    with Client(cluster[0]) as client, DaskWorker(client, dask_flows.DaskContext) as w:
        yield w


def test_map_and_join_give_the_thread_workers_result(dask_worker: DaskWorker) -> None:
    with Worker(threads=4) as local:
        expected = local.run(dask_flows.squares, {"n": 12})
    job = dask_worker.submit(dask_flows.squares, {"n": 12})
    assert job.result(60) == expected == sum(i * i for i in range(12))
    assert job.state == {"total": expected}


def test_loops_and_state_commit_in_the_driver(dask_worker: DaskWorker) -> None:
    job = dask_worker.submit(dask_flows.loop)
    assert job.result(60) == 4
    assert job.state == {"n": 4}
    assert job.node_state("step") == {"calls": 4}


def test_worker_state_counts_across_jobs(dask_worker: DaskWorker) -> None:
    flow = dask_flows.count.named("dask-count")
    dask_worker.map(flow, [{} for _ in range(10)], progress=False)
    assert dask_worker.worker_state("dask-count", "count") == {"jobs": 10}


def test_nodes_run_in_the_dask_worker_processes(dask_worker: DaskWorker) -> None:
    out = dask_worker.map(dask_flows.where, [{"i": i} for i in range(30)], progress=False)
    pids = {p for _, p, _ in out}
    assert os.getpid() not in pids
    assert all(conn_pid == pid for conn_pid, pid, _ in out)  # the WorkerScoped conn is the process's own


def test_worker_scoped_setup_once_per_dask_worker_and_teardown_on_close(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    os.environ["AETHERFLOW_DASK_LOG"] = str(log)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(RESOURCES), os.environ.get("PYTHONPATH", "")])
    with (
        LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0") as c,
        Client(c) as client,
        DaskWorker(client, dask_flows.DaskContext) as w,
    ):
        w.map(dask_flows.where, [{"i": i} for i in range(40)], progress=False)
        setups = sorted(p.name for p in log.iterdir() if p.name.startswith("setup"))
        assert len(setups) == 2
        assert all((log / s).read_text() == "setup\n" for s in setups)
    teardowns = [p for p in log.iterdir() if p.name.startswith("teardown")]
    assert len(teardowns) == 2


def test_conflicting_read_then_set_is_resent_then_fails(dask_worker: DaskWorker) -> None:
    @node(conflict_retries=1)
    def greedy(job_state) -> None:
        job_state.get("k")
        job_state.set("k", 1)

    job = dask_worker.submit(greedy)
    _fails_with_a_conflict_while_spoiled(job)


def _fails_with_a_conflict_while_spoiled(job: Any) -> None:
    """A commit to key 'k' lands between every snapshot and its write-set: the driver re-sends, then gives up."""
    space = job.run.job_space
    stop = threading.Event()

    def spoil() -> None:
        from aetherflow.state import StateHandle, commit

        while not stop.is_set():
            h = StateHandle(space)
            h.set("k", 0)
            commit([h], job.id, "spoiler")

    t = threading.Thread(target=spoil)
    t.start()
    try:
        with pytest.raises(StateConflictError):
            job.result(60)
    finally:
        stop.set()
        t.join()


def test_value_that_cannot_travel_names_the_node(dask_worker: DaskWorker) -> None:
    @node
    def unpicklable() -> object:
        return threading.Lock()

    with pytest.raises(Exception, match="unpicklable"):
        dask_worker.submit(unpicklable).result(60)


def test_killed_dask_worker_tasks_are_retried(cluster: tuple[LocalCluster, Path]) -> None:
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c,
        Client(c) as client,
        DaskWorker(client) as w,
    ):

        @node
        def die_once(i: int, marker: str) -> int:
            import os as _os

            if i == 0 and not _os.path.exists(marker):
                open(marker, "w").close()
                _os._exit(1)  # kills the Dask worker process running this task
            return i

        marker = str(Path(os.environ["AETHERFLOW_DASK_LOG"]) / "died")
        assert w.map(die_once, [{"i": i, "marker": marker} for i in range(6)], progress=False) == list(range(6))


def test_failed_attempts_on_the_cluster_are_recorded_by_the_driver(dask_worker: DaskWorker) -> None:
    job = dask_worker.submit(dask_flows.flaky_fetch)
    assert job.result(60) == "ok"
    runs = dask_worker.store.node_runs(job.id)
    assert [(r.node, r.attempt, r.status) for r in runs] == [
        ("flaky_fetch", 1, "failed"),
        ("flaky_fetch", 2, "failed"),
        ("flaky_fetch", 3, "completed"),
    ]
    assert runs[0].error is not None and runs[0].error.endswith("raised ConnectionError: attempt 1 lost the connection")


def test_snapshot_then_set_on_the_cluster_conflicts_like_get_then_set(dask_worker: DaskWorker) -> None:
    """A whole read made on a Dask worker travels back with the write-set and counts at commit."""

    @node(conflict_retries=1)
    def greedy_snapshot(job_state) -> None:
        seen = job_state.snapshot()
        job_state.set("k", seen.get("k", 0) + 1)

    job = dask_worker.submit(greedy_snapshot)
    _fails_with_a_conflict_while_spoiled(job)


def test_a_node_error_from_the_cluster_keeps_its_cause_and_traceback(dask_worker: DaskWorker) -> None:
    from aetherflow import NodeError

    with pytest.raises(NodeError) as caught:
        dask_worker.run(dask_flows.boom_on_cluster, {"x": 3})
    assert isinstance(caught.value.__cause__, ValueError) and str(caught.value.__cause__) == "bad 3"
    [run] = [r for r in dask_worker.store.node_runs(dask_worker.store.jobs(limit=1)[0].id) if r.status == "failed"]
    assert run.traceback is not None and "boom_on_cluster" in run.traceback and "ValueError: bad 3" in run.traceback


def test_context_defined_in_a_function_runs_on_dask(dask_worker: DaskWorker) -> None:
    """A context class a Dask worker cannot import travels by value: nodes get its providers' values."""
    import uuid

    def tagged(kind: str) -> dict[str, str]:
        return {"kind": kind, "pid": str(os.getpid()), "token": uuid.uuid4().hex}

    class NotebookContext(BaseFlowContext):
        shared = providers.Singleton(tagged, "shared", guard=False)
        per_thread = providers.ThreadLocalSingleton(tagged, "thread")
        fresh = providers.Factory(tagged, "fresh")
        owner = providers.Factory(str, shared.provided["pid"])

    @node
    def where(i: int, shared: dict, per_thread: dict, fresh: dict, owner: str) -> dict[str, object]:
        return {
            "i": i,
            "pid": os.getpid(),
            "thread": threading.current_thread().name,
            "shared": shared,
            "per_thread": per_thread,
            "fresh": fresh,
            "owner": owner,
        }

    first = dask_worker.map(where, [{"i": i} for i in range(20)], context=NotebookContext, progress=False)
    second = dask_worker.map(where, [{"i": i} for i in range(20)], context=NotebookContext, progress=False)
    out = first + second
    assert [o["i"] for o in out] == list(range(20)) * 2
    pids = {o["pid"] for o in out}
    assert os.getpid() not in pids
    assert all(
        o["shared"]["pid"] == o["per_thread"]["pid"] == o["fresh"]["pid"] == o["owner"] == str(o["pid"]) for o in out
    )
    # one Singleton per Dask worker process, the same object for both jobs
    shared = {o["pid"]: set() for o in out}
    for o in out:
        shared[o["pid"]].add(o["shared"]["token"])
    assert all(len(tokens) == 1 for tokens in shared.values())
    # one ThreadLocalSingleton per Dask worker thread; a Factory per injection
    per_thread: dict[tuple[int, str], set[str]] = {}
    for o in out:
        per_thread.setdefault((o["pid"], o["thread"]), set()).add(o["per_thread"]["token"])
    assert all(len(tokens) == 1 for tokens in per_thread.values())
    assert len({o["fresh"]["token"] for o in out}) == len(out)


def test_context_that_cannot_travel_is_refused_at_submit_naming_its_provider(dask_worker: DaskWorker) -> None:
    """A provider that cannot be pickled is named, with what to do, before any job is recorded."""
    from aetherflow.shipping import ContextNotShippableError

    class LockedContext(BaseFlowContext):
        lock = providers.Object(threading.Lock())

    @node
    def uses(lock: object) -> str:
        return "never"

    recorded = len(dask_worker.store.jobs(limit=1000))
    with pytest.raises(ContextNotShippableError, match=r"its provider 'lock' \(Object\) cannot be pickled") as caught:
        dask_worker.submit(uses, context=LockedContext)
    assert "Define the context at the top of a module the Dask workers can import" in str(caught.value)
    assert len(dask_worker.store.jobs(limit=1000)) == recorded


def test_context_the_workers_cannot_import_says_how_to_send_it(dask_worker: DaskWorker, tmp_path: Path) -> None:
    """A class pickled by reference whose module the workers lack: the error says what to do."""
    (tmp_path / "driver_only_context.py").write_text(
        "from aetherflow import BaseFlowContext, providers\n"
        "class DriverOnlyContext(BaseFlowContext):\n"
        "    meaning = providers.Object(42)\n"
    )
    sys.path.insert(0, str(tmp_path))  # on the driver only: the Dask workers started before
    try:
        from driver_only_context import DriverOnlyContext  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))

    @node
    def reads(meaning: int) -> int:
        return meaning

    from aetherflow import NodeError
    from aetherflow.dask import ContextNotImportableError

    with pytest.raises(NodeError) as caught:
        dask_worker.run(reads, context=DriverOnlyContext)
    cause = caught.value.__cause__
    assert isinstance(cause, ContextNotImportableError)
    assert "cannot import the context driver_only_context.DriverOnlyContext: No module named" in str(cause)
    assert "install that module on the Dask workers, or call cloudpickle.register_pickle_by_value(module)" in str(cause)


SCRIPT = """
import json, os, uuid

from distributed import LocalCluster

from aetherflow import BaseFlowContext, node, providers
from aetherflow.dask import DaskWorker


def tagged():
    return {"pid": os.getpid(), "token": uuid.uuid4().hex}


class ScriptContext(BaseFlowContext):
    shared = providers.Singleton(tagged, guard=False)
    fresh = providers.Factory(tagged)


@node
def where(i: int, shared: dict, fresh: dict) -> list:
    return [os.getpid(), shared["pid"], shared["token"], fresh["token"]]


if __name__ == "__main__":
    with (
        LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0") as cluster,
        DaskWorker(cluster.scheduler_address, ScriptContext) as worker,
    ):
        jobs = [worker.map(where, [{"i": i} for i in range(12)], progress=False) for _ in range(2)]
    print(json.dumps({"driver": os.getpid(), "jobs": jobs}))
"""


def test_context_in_a_script_run_as_main_works_end_to_end(tmp_path: Path) -> None:
    """`python script.py` with its context in __main__ and a LocalCluster: one Singleton per Dask process."""
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [row for job in out["jobs"] for row in job]
    assert len(rows) == 24
    assert all(pid == shared_pid != out["driver"] for pid, shared_pid, _, _ in rows)
    tokens: dict[int, set[str]] = {}
    for pid, _, token, _ in rows:
        tokens.setdefault(pid, set()).add(token)
    assert all(len(t) == 1 for t in tokens.values())  # one Singleton per Dask worker process, across both jobs
    assert len({fresh for _, _, _, fresh in rows}) == 24


def test_scale_out_page_snippet_runs_as_a_script(tmp_path: Path) -> None:
    """docs/scale-out.md's first example, saved as a script and run with python, prints what it says."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "scale-out.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "LocalCluster(" in b]
    assert 'if __name__ == "__main__":' in block
    script = tmp_path / "scale_out.py"
    script.write_text(block)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "49500"


@node
def read_n(n: int) -> int:
    return n


@each_changed_instance
def test_context_instance_set_up_on_the_driver_gives_its_values_on_dask(dask_worker: DaskWorker, make: object) -> None:
    """An instance configured, overridden or given a dependency gives nodes on Dask what it gives on threads."""
    ctx = make()  # type: ignore[operator]
    assert read_n.run(context=ctx) == 7
    assert dask_worker.run(read_n, context=ctx) == 7


def _change_instance(ctx: type, instance: object) -> None:
    instance.config.from_dict({"n": 2})  # type: ignore[attr-defined]


def _change_class(ctx: type, instance: object) -> None:
    ctx.config.from_dict({"n": 2})  # type: ignore[attr-defined]


@pytest.mark.parametrize("change", [_change_instance, _change_class], ids=["instance", "class"])
def test_context_changed_between_jobs_gives_what_a_thread_worker_gives(dask_worker: DaskWorker, change: object) -> None:
    """A context configured again after a first job: the next Dask job sees what a thread Worker's next job sees."""

    def jobs(worker: Worker) -> list[int]:
        class Settings(BaseFlowContext):
            config = providers.Configuration()
            n = providers.Callable(int, config.n)

        Settings.config.from_dict({"n": 1})
        instance = Settings()
        instance.config.from_dict({"n": 1})
        context = instance if change is _change_instance else Settings
        first = worker.run(read_n, context=context)
        change(Settings, instance)  # type: ignore[operator]
        return [first, worker.run(read_n, context=context)]

    with Worker(threads=2) as local:
        expected = jobs(local)
    assert jobs(dask_worker) == expected
    if change is _change_instance:
        assert expected == [1, 2]


def test_context_changed_between_jobs_is_a_new_instance_on_the_dask_workers(dask_worker: DaskWorker) -> None:
    """An unchanged context keeps its Singleton on each Dask worker process; a changed one is made afresh."""
    import uuid

    class Tokens(BaseFlowContext):
        config = providers.Configuration()
        token = providers.Singleton(lambda: uuid.uuid4().hex, guard=False)

    @node
    def token_of(i: int, token: str) -> tuple[int, str]:
        return os.getpid(), token

    ctx = Tokens()
    ctx.config.from_dict({"n": 1})

    def tokens() -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for pid, token in dask_worker.map(token_of, [{"i": i} for i in range(12)], context=ctx, progress=False):
            out.setdefault(pid, set()).add(token)
        return out

    first, again = tokens(), tokens()
    assert all(len(t) == 1 for t in first.values()) and all(again[pid] == first[pid] for pid in again if pid in first)
    ctx.config.from_dict({"n": 2})
    changed = tokens()
    assert all(not (changed[pid] & first.get(pid, set())) for pid in changed)


def test_context_with_a_large_object_is_sent_once_per_dask_worker(dask_worker: DaskWorker) -> None:
    """40 one-node jobs with a 20 MB object in the context cost about what they cost with an empty one."""
    import time

    @node
    def size(i: int, blob: bytes) -> int:
        return len(blob)

    def context_of(megabytes: int) -> type:
        class Big(BaseFlowContext):
            blob = providers.Object(b"x" * (megabytes * 2**20))

        return Big

    def timed(ctx: type) -> float:
        t = time.perf_counter()
        sizes = dask_worker.map(size, [{"i": i} for i in range(40)], context=ctx, progress=False)
        assert sizes == [len(ctx.blob())] * 40  # type: ignore[attr-defined]
        return time.perf_counter() - t

    small = timed(context_of(0))
    large = timed(context_of(20))
    assert large < 3 * small + 1.0, f"empty context {small:.2f}s, 20 MB context {large:.2f}s"
