"""The same contract for every store: memory, SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from aetherflow import NodeError, NodeOutputError, StoreError, Suspend, Worker, node, open_store
from aetherflow.runs import RunFacts
from aetherflow.state import Commit, StateScope, Write
from aetherflow.status import JobStatus, NodeStatus
from aetherflow.store import Store
from storecase import store_url

KINDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    s = open_store(store_url(request.param, tmp_path))
    yield s
    s.close()


@node
def load(n: int) -> list[int]:
    return list(range(n))


@node
def total(load: list[int], job_state, node_state) -> int:
    job_state.set("sum", sum(load))
    node_state.apply("calls", lambda c: c + 1, default=0)
    return sum(load)


FLOW = load.then(total).named("summing")


def test_store_records_job_with_inputs_output_and_times(store: Store) -> None:
    with Worker(threads=2, store=store) as w:
        job = w.submit(FLOW, {"n": 4})
        assert job.result() == 6
    rec = store.job(job.id)
    assert (rec.id, rec.flow, rec.status, rec.inputs, rec.output, rec.error) == (
        job.id,
        "summing",
        "completed",
        {"n": 4},
        6,
        None,
    )
    assert rec.created_at.tzinfo is UTC
    assert rec.created_at <= rec.started_at <= rec.finished_at
    assert rec.worker == w.id


def test_store_records_node_runs_in_start_order(store: Store) -> None:
    with Worker(threads=2, store=store) as w:
        job = w.submit(FLOW, {"n": 3})
        job.result()
    runs = store.node_runs(job.id)
    assert [(r.node, r.status, r.iteration, r.attempt) for r in runs] == [
        ("load", "completed", 1, 1),
        ("total", "completed", 1, 1),
    ]
    assert all(r.thread and r.started_at <= r.finished_at for r in runs)


def test_store_records_every_commit_with_versions(store: Store) -> None:
    with Worker(threads=2, store=store) as w:
        job = w.submit(FLOW, {"n": 3})
        job.result()
    history = store.state_history(job.id)
    assert [(h.scope, h.namespace, h.key, h.value, h.version) for h in history] == [
        ("job", "", "sum", 3, 1),
        ("node", "total", "calls", 1, 1),
    ]
    assert [h.key for h in store.state_history(job.id, key="sum")] == ["sum"]


def test_store_event_log_is_ordered_and_filterable(store: Store) -> None:
    with Worker(threads=2, store=store) as w:
        job = w.submit(FLOW, {"n": 2})
        job.result()
    events = store.events(job.id)
    types = [e.type for e in events]
    assert types[0] == "job_created" and types[-1] == "job_completed"
    assert types.count("node_completed") == 2 and "state_committed" in types
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert [e.node for e in store.events(job.id, types=["node_completed"])] == ["load", "total"]


def test_store_keeps_every_status_change_of_a_suspended_and_resumed_job(store: Store) -> None:
    @node
    def approve(approved: bool = False) -> str:
        if not approved:
            raise Suspend("waiting for approval")
        return "shipped"

    with Worker(threads=1, store=store, flows=[approve]) as w:
        job = w.submit(approve)
        with contextlib.suppress(Exception):
            job.result(10)
        assert w.resume(job.id, inputs={"approved": True}).result(10) == "shipped"
    changes = [e.type for e in store.events(job.id) if e.type.startswith("job_")]
    assert changes == ["job_created", "job_running", "job_suspended", "job_running", "job_completed"]
    assert [e.data.get("error") for e in store.events(job.id, types=["job_suspended"])] == [
        "suspended at 'approve': waiting for approval"
    ]


def test_store_records_failure_with_traceback(store: Store) -> None:
    @node
    def broken(n: int) -> int:
        raise ValueError(f"bad n={n}")

    with Worker(threads=1, store=store) as w:
        job = w.submit(broken, {"n": 1})
        with pytest.raises(NodeError):
            job.result()
    rec = store.job(job.id)
    assert rec.status == "failed" and "bad n=1" in rec.error
    [run] = store.node_runs(job.id)
    assert run.status == "failed" and "ValueError: bad n=1" in run.traceback


def test_store_queries_filter_by_flow_status_and_time(store: Store) -> None:
    @node
    def maybe(ok: bool) -> bool:
        if not ok:
            raise RuntimeError("no")
        return ok

    start = datetime.now(UTC) - timedelta(seconds=1)
    with Worker(threads=2, store=store) as w:
        jobs = [w.submit(maybe, {"ok": i % 3 != 0}) for i in range(9)]
        for j in jobs:
            with contextlib.suppress(NodeError):
                j.result()
        w.submit(FLOW, {"n": 1}).result()
    assert len(store.jobs(flow="maybe")) == 9
    assert len(store.jobs(flow="maybe", status="failed")) == 3
    assert len(store.jobs(limit=4)) == 4
    newest = store.jobs(limit=1)[0]
    assert newest.flow == "summing"
    assert store.jobs(since=start + timedelta(hours=1)) == []
    assert len(store.jobs(until=start)) == 0
    stats = store.stats("maybe")
    assert stats.counts == {"completed": 6, "failed": 3}
    assert stats.success_rate == pytest.approx(6 / 9)
    assert stats.nodes["maybe"].runs == 9 and stats.nodes["maybe"].failed == 3
    assert stats.nodes["maybe"].p50 <= stats.nodes["maybe"].p95


def test_store_prune_drops_old_finished_jobs(store: Store) -> None:
    with Worker(threads=1, store=store) as w:
        old = w.submit(FLOW, {"n": 1})
        old.result()
    assert store.prune(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1
    with pytest.raises(StoreError, match="No job"):
        store.job(old.id)


def test_store_keeps_a_new_jobs_records_in_order_after_every_job_is_pruned(store: Store) -> None:
    """Pruning the newest records does not disturb the order of a later job's runs, events and state."""
    with Worker(threads=1, store=store) as w:
        w.submit(FLOW, {"n": 3}).result()
        store.prune(older_than=datetime.now(UTC) + timedelta(seconds=1))
        job = w.submit(FLOW, {"n": 4})
        assert job.result() == 6
    assert [r.node for r in store.node_runs(job.id)] == ["load", "total"]
    types = [e.type for e in store.events(job.id)]
    assert types[0] == "job_created" and types[-1] == "job_completed"
    assert types.index("node_started") < types.index("state_committed") < types.index("job_completed")
    assert [s.value for s in store.state_history(job.id)] == [6, 1]
    assert store.progress(job.id).state[("job", "")] == {"sum": (6, 1)}


def _last_run(job_id: str, output: object) -> RunFacts:
    now = time.time()
    commit = Commit(StateScope.JOB, "", job_id, "last", (Write("done", True, 1),), now)
    return RunFacts(job_id, "last", 1, 1, NodeStatus.COMPLETED, "t", now, now, output, (commit,))


def test_store_records_a_jobs_last_run_and_its_end_in_one_call(store: Store) -> None:
    """`end_job` leaves the same records as the run and the status change written one after the other."""
    store.create_job("ends-at-once", "f", {}, "w", time.time(), running=True)
    last = _last_run("ends-at-once", 7)
    store.end_job("ends-at-once", JobStatus.COMPLETED, time.time(), output=7, last_run=last)
    job = store.job("ends-at-once")
    assert (job.status, job.output) == ("completed", 7)
    assert [(r.node, r.status) for r in store.node_runs("ends-at-once")] == [("last", "completed")]
    assert [s.value for s in store.state_history("ends-at-once")] == [True]
    assert [e.type for e in store.events("ends-at-once")] == [
        "job_created",
        "job_running",
        "node_started",
        "state_committed",
        "node_completed",
        "job_completed",
    ]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_jobs_last_run_and_its_end_are_one_transaction(kind: str, tmp_path: Path) -> None:
    """On a SQL store the last run and the job's end land together or not at all: one transaction."""
    store = open_store(store_url(kind, tmp_path))
    try:
        store.create_job("one-tx", "f", {}, "w", time.time(), running=True)
        writer = store._writer  # type: ignore[attr-defined]
        before = writer.batches
        store.end_job("one-tx", JobStatus.COMPLETED, time.time(), output=1, last_run=_last_run("one-tx", 1))
        assert writer.batches == before + 1
        store.create_job("refused", "f", {}, "w", time.time(), running=True)
        with pytest.raises(ValueError, match="Unable to serialize"):  # the job's output cannot be stored: neither lands
            store.end_job(
                "refused", JobStatus.COMPLETED, time.time(), output=object(), last_run=_last_run("refused", 1)
            )
        assert store.node_runs("refused") == []
        assert store.job("refused").status == "running"
    finally:
        store.close()


def test_store_redacts_secret_inputs_outputs_and_state(store: Store, tmp_path: Path) -> None:
    @node
    def login(password: SecretStr, job_state) -> dict:
        job_state.set("token", SecretStr("tok-" + password.get_secret_value()))
        return {"user": "ada", "password": password}

    with Worker(threads=1, store=store) as w:
        job = w.submit(login, {"password": "hunter2"})
        assert job.result()["password"].get_secret_value() == "hunter2"
    if store.persistent:
        rec = store.job(job.id)
        assert rec.inputs == {"password": "**********"}
        assert rec.output == {"user": "ada", "password": "**********"}
        assert [h.value for h in store.state_history(job.id)] == ["**********"]
        if "sqlite" in store.url:
            raw = Path(store.url.removeprefix("sqlite:///")).read_bytes()
            assert b"hunter2" not in raw


def test_store_redact_hook_applies_to_other_values(tmp_path: Path) -> None:
    def hide_emails(value: object) -> object:
        return {k: ("<hidden>" if k == "email" else v) for k, v in value.items()} if isinstance(value, dict) else value

    store = open_store(f"sqlite:///{tmp_path / 'r.db'}", redact=hide_emails)

    @node
    def profile(name: str) -> dict:
        return {"name": name, "email": f"{name}@example.org"}

    with Worker(threads=1, store=store) as w:
        job = w.submit(profile, {"name": "ada"})
        job.result()
    assert store.job(job.id).output == {"name": "ada", "email": "<hidden>"}
    store.close()


def test_store_keeps_pydantic_models_as_json(tmp_path: Path) -> None:
    class Point(BaseModel):
        x: int
        y: int

    @node
    def make() -> Point:
        return Point(x=1, y=2)

    with Worker(threads=1, store=f"sqlite:///{tmp_path / 'r.db'}") as w:
        job = w.submit(make)
        assert job.result() == Point(x=1, y=2)
        assert w.store.job(job.id).output == {"x": 1, "y": 2}


def test_unstorable_value_fails_the_node_naming_it(tmp_path: Path) -> None:
    @node
    def opaque() -> object:
        return object()

    with (
        Worker(threads=1, store=f"sqlite:///{tmp_path / 'r.db'}") as w,
        pytest.raises(NodeOutputError, match="cannot be stored as JSON.*pickle=True"),
    ):
        opaque.run(worker=w)


def test_pickle_is_opt_in(tmp_path: Path) -> None:
    class Opaque:
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Opaque)

    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(url, pickle=True)

    @node
    def make() -> tuple:
        return (1, 2)

    with Worker(threads=1, store=store) as w:
        job = w.submit(make)
        job.result()
    assert store.job(job.id).output == (1, 2)  # pickle keeps the tuple
    store.close()
    with pytest.raises(StoreError, match="pickle=True"):
        open_store(url).job(job.id)


def test_async_durability_flushes_at_job_end_and_close(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Worker(threads=2, store=url, durability="async") as w:
        ids = [w.submit(FLOW, {"n": i}) for i in range(20)]
        for j in ids:
            j.result()
    store = open_store(url)
    assert len(store.jobs(flow="summing")) == 20
    assert all(r.status == "completed" for r in store.jobs(flow="summing"))
    store.close()


def _jobs_in_file_alone(db: Path, copy: Path) -> int:
    """Jobs in the store file itself, without its WAL: what a backup of that one file would hold."""
    import sqlite3

    copy.write_bytes(db.read_bytes())
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    except sqlite3.DatabaseError:  # copied mid-checkpoint: try again
        return -1
    finally:
        conn.close()


def test_sqlite_store_file_is_brought_up_to_date_while_the_store_is_open(tmp_path: Path) -> None:
    """Commits reach the database file itself soon after they land, not only when the store closes."""
    db = tmp_path / "runs.db"
    store = open_store(f"sqlite:///{db}")
    try:
        for i in range(40):  # ~120 small commits: too few for SQLite's own checkpoint on commit
            store.create_job(f"job-{i}", "f", {}, "w", time.time())
            store.set_job_status(f"job-{i}", JobStatus.RUNNING, time.time())
            store.set_job_status(f"job-{i}", JobStatus.COMPLETED, time.time(), output=i)
        deadline = time.monotonic() + 10
        while _jobs_in_file_alone(db, tmp_path / "copy.db") < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _jobs_in_file_alone(db, tmp_path / "copy.db") >= 20
        assert len(store.jobs(limit=100)) == 40
    finally:
        store.close()


def _assert_wal_bounded_while_writing(store: Store, wal: Path) -> None:
    """Write 8,000 jobs (~8 pages each: 64,000 pages of WAL if it never started over); the WAL stays bounded.

    Usually near 10,000 pages; the promise is the writer's own fallback checkpoint, past
    40,000 pages, for when the background one does not get its turn (a starved machine).
    """
    try:
        largest = 0
        for i in range(8_000):
            store.create_job(f"job-{i}", "f", {"pad": "x" * 16000}, "w", time.time())
            if i % 100 == 0:
                largest = max(largest, wal.stat().st_size)
        assert len(store.jobs(limit=10_000)) == 8_000
    finally:
        store.close()
    assert largest <= 42_000 * 4120, f"the WAL grew to {largest / 4120:,.0f} pages"


def test_sqlite_wal_stays_bounded_during_a_long_run(tmp_path: Path) -> None:
    """A store written without a pause keeps its WAL file bounded (about 40 MB), however long it runs."""
    db = tmp_path / "runs.db"
    store = open_store(f"sqlite:///{db}")
    _assert_wal_bounded_while_writing(store, tmp_path / "runs.db-wal")


def test_sqlite_wal_stays_bounded_when_the_background_checkpoint_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint thread that cannot open the file hands checkpoints back to the commits, with a warning."""
    import sqlite3

    from aetherflow.store import sqlite as sqlite_store

    db = tmp_path / "runs.db"
    store = open_store(f"sqlite:///{db}")
    store.jobs()  # this thread's reader, opened before connections start failing

    def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite_store.sqlite3, "connect", refuse)
    _assert_wal_bounded_while_writing(store, tmp_path / "runs.db-wal")
    assert "Cannot open" in caplog.text and "checkpoint it in the background" in caplog.text


def test_memory_store_keeps_at_most_max_jobs() -> None:
    from aetherflow.store import MemoryStore

    store = MemoryStore(max_jobs=5)
    with Worker(threads=2, store=store) as w:
        for i in range(12):
            w.submit(FLOW, {"n": i}).result()
    assert len(store.jobs(limit=100)) == 5


def test_unknown_store_url_lists_the_choices() -> None:
    with pytest.raises(StoreError, match="expected 'memory://', 'sqlite:///relative.db'"):
        open_store("mysql://x")


def test_suspend_and_resume_with_new_inputs(store: Store) -> None:
    ran = []

    @node
    def prepare(amount: int) -> int:
        ran.append("prepare")
        return amount

    @node
    def approve(prepare: int, approved: bool | None = None) -> str:
        if approved is None:
            raise Suspend("waiting for a human")
        return "paid" if approved else "refused"

    flow = prepare.then(approve).named("payment")
    with Worker(threads=2, store=store, flows=[flow]) as w:
        job = w.submit(flow, {"amount": 10})
        with pytest.raises(Exception, match="suspended at node 'approve': waiting for a human"):
            job.result()
        assert job.status == "suspended"
        assert store.job(job.id).status == "suspended"
        resumed = w.resume(job.id, inputs={"approved": True})
        assert resumed.result() == "paid"
    assert ran == ["prepare"]  # completed nodes are not run again
    assert store.job(job.id).status == "completed"
    assert store.job(job.id).output == "paid"


def test_resume_restores_committed_state(store: Store) -> None:
    @node
    def first(job_state) -> int:
        job_state.set("seen", ["first"])
        return 1

    @node
    def second(first: int, job_state, go: bool = False) -> list:
        if not go:
            raise Suspend("later")
        return job_state["seen"] + ["second"]

    flow = first.then(second).named("two-steps")
    with Worker(threads=1, store=store) as w:
        job = w.submit(flow)
        with pytest.raises(Exception, match="suspended"):
            job.result()
    time.sleep(0.01)
    with Worker(threads=1, store=store, flows=[flow]) as w2:
        assert w2.resume(job.id, inputs={"go": True}).result() == ["first", "second"]


def test_resume_of_unknown_flow_says_how_to_pass_it(store: Store) -> None:
    with Worker(threads=1, store=store) as w:
        job = w.submit(FLOW, {"n": 1})
        job.result()
    with Worker(threads=1, store=store) as w2, pytest.raises(Exception, match=r"worker.resume\(job_id, flow=...\)"):
        w2.resume(job.id)


def test_resume_after_many_commits_reads_snapshot_and_later_writes(store: Store) -> None:
    """Past `snapshot_every` commits, resume starts from a snapshot plus the writes after it."""

    @node
    def tick(job_state, node_state) -> int:
        node_state.apply("runs", lambda r: r + 1, default=0)
        return job_state.apply("n", lambda n: n + 1, default=0)

    @node
    def again(tick: int) -> bool:
        return tick < 250

    @node
    def gate(job_state, release: bool = False) -> int:
        if not release:
            raise Suspend("hold")
        return job_state["n"]

    flow = tick.then(again).branch_on({True: tick, False: gate}).named("many-commits")
    with Worker(threads=2, store=store) as w:
        job = w.submit(flow)
        with pytest.raises(Exception, match="suspended"):
            job.result(60)
    with Worker(threads=2, store=store, flows=[flow]) as w2:
        resumed = w2.resume(job.id, inputs={"release": True})
        assert resumed.result(60) == 250
        assert resumed.state == {"n": 250}
        assert resumed.node_state("tick") == {"runs": 250}


def test_resume_runs_only_the_unfinished_items_of_a_map(store: Store) -> None:
    ran: list[int] = []

    @node
    def items(n: int) -> list[int]:
        return list(range(n))

    @node
    def work(i: int, approved: bool = False) -> int:
        if i == 3 and not approved:
            raise Suspend("item 3 needs approval")
        ran.append(i)
        return i * 10

    flow = items.map(work).named("partial-map")
    with Worker(threads=1, store=store, flows=[flow]) as w:
        job = w.submit(flow, {"n": 6})
        with pytest.raises(Exception, match="item 3 needs approval"):
            job.result(30)
        first = sorted(ran)
        assert 3 not in first
        resumed = w.resume(job.id, inputs={"approved": True})
        assert resumed.result(30) == [0, 10, 20, 30, 40, 50]
    assert sorted(ran) == sorted([*first, 3, *(i for i in range(6) if i not in first and i != 3)])
    assert ran.count(3) == 1 and all(ran.count(i) == 1 for i in first)


@pytest.mark.postgres
def test_async_batches_keep_order_around_snapshots_and_status_updates() -> None:
    """Many records of several jobs in one PostgreSQL batch (async): folded INSERTs keep
    each job's order, snapshots still see exactly the writes before them, and status updates
    land where they were written."""
    from storecase import postgres_url

    @node
    def tick(job_state) -> int:
        return job_state.apply("n", lambda n: n + 1, default=0)

    @node
    def again(tick: int) -> bool:
        return tick < 30

    @node
    def finish(job_state) -> int:
        return job_state["n"]

    flow = tick.then(again).branch_on({True: tick, False: finish}).named("async-order")
    store = open_store(postgres_url(), durability="async", snapshot_every=4)
    try:
        with Worker(threads=4, store=store) as w:
            jobs = [w.submit(flow) for _ in range(6)]
            assert [j.result(60) for j in jobs] == [30] * 6
        for j in jobs:
            assert store.job(j.id).status == "completed"
            assert [s.value for s in store.state_history(j.id, "n")] == list(range(1, 31))
            types = [e.type for e in store.events(j.id)]
            assert types[:2] == ["job_created", "job_running"] and types[-1] == "job_completed"
            assert types.count("node_started") == types.count("node_completed") == 61
            runs = store.node_runs(j.id)
            assert [r.node for r in runs] == ["tick", "again"] * 30 + ["finish"]
            assert store.progress(j.id).state == {("job", ""): {"n": (30, 30)}}
    finally:
        store.close()
