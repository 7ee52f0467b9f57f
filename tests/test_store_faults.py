"""The write path never lies: what a store acknowledges is in it, exactly once.

Real faults, not mocks where a real one can be had: records the database refuses mixed
into concurrent group commits, commits whose outcome is unknown, PostgreSQL backends
terminated while threads write, a full disk, a corrupt file, a read-only store.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aetherflow import NodeError, StoreError, Worker, node, open_store
from aetherflow.status import JobStatus, NodeStatus
from aetherflow.store import RunFacts, Store
from aetherflow.store.writer import BatchWriter
from storecase import postgres_url, store_url


@node
def one() -> int:
    return 1


@node
def two() -> int:
    return 2


@node
def five() -> int:
    return 5


SQL_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=SQL_KINDS)
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = open_store(store_url(request.param, tmp_path))
    yield s
    s.close()


# -- group commit: every caller learns its own outcome -----------------------------------------


def test_every_caller_waiting_on_a_batch_learns_its_own_outcome() -> None:
    committed: list[str] = []

    def transact(items: list[str]) -> None:
        time.sleep(0.002)  # long enough that many callers queue into one batch
        if any(i.startswith("bad") for i in items):
            raise ValueError("the database refuses " + next(i for i in items if i.startswith("bad")))
        committed.extend(items)

    writer: BatchWriter[str] = BatchWriter("test", transact, sync=True)
    outcomes: dict[str, str] = {}

    def caller(n: int) -> None:
        for k in range(25):
            item = f"{'bad' if (n * 25 + k) % 9 == 0 else 'ok'}-{n}-{k}"
            try:
                writer.submit(item)
                outcomes[item] = "acknowledged"
            except StoreError as exc:
                outcomes[item] = str(exc)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    writer.close()
    assert len(outcomes) == 12 * 25
    acknowledged = [i for i, o in outcomes.items() if o == "acknowledged"]
    assert sorted(acknowledged) == sorted(i for i in outcomes if i.startswith("ok"))  # innocent items all commit
    assert sorted(committed) == sorted(acknowledged)  # exactly once each
    for item, outcome in outcomes.items():
        if item.startswith("bad"):
            assert outcome == f"the database refuses {item}"  # each poisoned caller hears of its own item


def test_a_commit_cut_short_is_never_reported_as_committed() -> None:
    def transact(items: list[str]) -> None:
        raise KeyboardInterrupt  # Ctrl-C lands in the thread that is committing

    writer: BatchWriter[str] = BatchWriter("test", transact, sync=True)
    outcomes: dict[str, str] = {}

    def caller(item: str) -> None:
        try:
            writer.submit(item)
            outcomes[item] = "acknowledged"
        except BaseException as exc:  # noqa: BLE001 - what each caller was told is what we check
            outcomes[item] = type(exc).__name__ + ": " + str(exc)

    with writer._committing:  # hold the committers back so both items share one batch
        threads = [threading.Thread(target=caller, args=(item,)) for item in ("a", "b")]
        for t in threads:
            t.start()
        while len(writer._pending) < 2:
            time.sleep(0.001)
    for t in threads:
        t.join(10)
    assert "acknowledged" not in outcomes.values()
    assert sorted(o.split(":")[0] for o in outcomes.values()) == ["KeyboardInterrupt", "StoreError"]
    assert "interrupted before its commit finished" in next(o for o in outcomes.values() if o.startswith("StoreError"))


class _CtrlCAsBeginReturns(sqlite3.Connection):
    """Ctrl-C raised the moment BEGIN IMMEDIATE has taken the write lock, once armed.

    Where CPython raises a Ctrl-C that came while BEGIN waited for another process's lock:
    the signal is handled at the first check after the call returns, with the lock held.
    """

    armed = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = super().execute(sql, *args)
        if sql == "BEGIN IMMEDIATE" and _CtrlCAsBeginReturns.armed:
            _CtrlCAsBeginReturns.armed = False
            raise KeyboardInterrupt
        return cursor


def test_ctrl_c_as_a_commit_begins_leaves_no_write_transaction_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C landing just after a commit's BEGIN leaves no transaction open: another process
    writes at once (it used to wait 60 s, then fail 'database is locked'), and so does this store."""
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", functools.partial(connect, factory=_CtrlCAsBeginReturns))
    path = tmp_path / "s.db"
    with open_store(f"sqlite:///{path}") as store:
        _CtrlCAsBeginReturns.armed = True
        with pytest.raises(KeyboardInterrupt):
            store.create_job("interrupted", "f", {}, "w", time.time(), running=True)
        other = connect(path, timeout=0, isolation_level=None)  # another process, waiting for nobody
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
        store.create_job("next", "f", {}, "w", time.time(), running=True)
        assert [r.id for r in store.jobs()] == ["next"]


def test_a_caller_interrupted_while_waiting_does_not_keep_the_lead() -> None:
    """Ctrl-C in a caller waiting on a group commit: later callers are still committed."""
    import signal

    committed: list[str] = []
    started = threading.Event()

    def transact(items: list[str]) -> None:
        if "slow" in items:
            started.set()
            time.sleep(0.3)
        committed.extend(items)

    writer: BatchWriter[str] = BatchWriter("test", transact, sync=True)
    leader = threading.Thread(target=writer.submit, args=("slow",))
    leader.start()
    assert started.wait(5)

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt):
            writer.submit("interrupted")  # waits behind the slow batch, then Ctrl-C
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    leader.join(5)
    done = threading.Event()
    threading.Thread(target=lambda: (writer.submit("later"), done.set()), daemon=True).start()
    assert done.wait(5), "a caller that left kept the lead: nobody commits any more"
    assert committed == ["slow", "interrupted", "later"]  # the item whose caller left is committed by the next leader
    writer.close()


def _poisoned_id() -> str:
    # SQLite cannot encode the surrogate; PostgreSQL refuses the NUL.
    return uuid.uuid4().hex + "\x00\udcff"


def _record_one_job(store: Store, job_id: str) -> None:
    now = time.time()
    store.create_job(job_id, "poison-test", {"n": 1}, "w1", now, running=True)
    store.record_run(
        RunFacts(
            job_id, "step", 1, 1, NodeStatus.COMPLETED, threading.current_thread().name, now, time.time(), output=[1, 2]
        )
    )
    store.set_job_status(job_id, JobStatus.COMPLETED, time.time(), output=3)


def test_poisoned_records_in_concurrent_group_commits_fail_only_their_own_job(sql_store: Store) -> None:
    acknowledged: list[str] = []
    refused: list[tuple[str, BaseException]] = []

    def caller(n: int) -> None:
        for k in range(40):
            poisoned = (n * 40 + k) % 7 == 3
            job_id = _poisoned_id() if poisoned else uuid.uuid4().hex
            try:
                _record_one_job(sql_store, job_id)
            except Exception as exc:  # noqa: BLE001 - what the caller was told is what we check
                refused.append((job_id, exc))
            else:
                assert not poisoned, f"the store acknowledged a record it cannot hold: {job_id!r}"
                acknowledged.append(job_id)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(acknowledged) + len(refused) == 8 * 40
    assert len(refused) == sum(1 for i in range(8 * 40) if i % 7 == 3)
    assert all(isinstance(exc, StoreError) for _, exc in refused), [type(e) for _, e in refused]
    assert all("poison-test" not in str(exc) or "Could not write" in str(exc) for _, exc in refused)
    jobs = {j.id: j for j in sql_store.jobs(flow="poison-test", limit=10_000)}
    assert set(jobs) == set(acknowledged)  # every acknowledged job is there, and nothing else
    assert all(j.status == "completed" and j.output == 3 for j in jobs.values())
    assert all(len(sql_store.node_runs(i)) == 1 for i in acknowledged)  # once each
    assert sql_store.jobs(status="running") == []


def test_errors_with_undecodable_file_names_and_nul_are_recorded(sql_store: Store) -> None:
    @node
    def read(path: str) -> str:
        if path.startswith("bad"):
            raise FileNotFoundError(f"no such file: /data/in\udcff.csv (nul: \x00) {path}")
        return path

    with Worker(threads=8, store=sql_store) as w:
        jobs = [w.submit(read, {"path": f"{'bad' if i % 5 == 0 else 'ok'}{i}"}) for i in range(60)]
        outcomes = {}
        for j in jobs:
            try:
                outcomes[j.id] = j.result(30)
            except NodeError as exc:
                outcomes[j.id] = exc
    for j in jobs:
        rec = sql_store.job(j.id)
        if isinstance(outcomes[j.id], NodeError):
            assert rec.status == "failed"
            assert "no such file: /data/in\\udcff.csv" in rec.error  # escaped, not lost
            [run] = sql_store.node_runs(j.id)
            assert run.status == "failed" and "FileNotFoundError" in run.traceback
        else:
            assert rec.status == "completed" and rec.output == outcomes[j.id]
    assert sql_store.jobs(status="running") == []


# -- idempotent writes -------------------------------------------------------------------------


def test_a_batch_retried_after_an_unknown_commit_outcome_is_written_once(tmp_path: Path) -> None:
    """The PostgreSQL case (COMMIT sent, connection lost), replayed on a SQLite file."""
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    store.commit_outcome_can_be_lost = True  # type: ignore[attr-defined] - as PostgreSQL's
    real = store._execute_batch  # type: ignore[attr-defined]
    lost = {"replies": 3}

    def commit_then_lose_the_reply(statements: list) -> None:
        real(statements)
        if lost["replies"]:
            lost["replies"] -= 1
            raise sqlite3.OperationalError("database is locked")  # retryable: the writer tries again

    store._execute_batch = commit_then_lose_the_reply  # type: ignore[attr-defined]
    with Worker(threads=2, store=store) as w:
        job = w.submit(one)
        assert job.result(10) == 1
    assert len(store.jobs()) == 1
    assert [r.node for r in store.node_runs(job.id)] == ["one"]
    assert [e.type for e in store.events(job.id)] == [
        "job_created",
        "job_running",
        "node_started",
        "node_completed",
        "job_completed",
    ]
    store.close()


def test_a_version_1_store_is_migrated_and_keeps_its_jobs(tmp_path: Path) -> None:
    from aetherflow.store.sql import UNKEYED_VERSION, migrations

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    for sql in dict(migrations("REAL", "INTEGER PRIMARY KEY AUTOINCREMENT"))[1]:
        conn.execute(sql)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO jobs (id, flow, status, created_at, worker) VALUES ('old1', 'f', 'completed', 1.0, 'w')")
    conn.commit()
    conn.close()
    store = open_store(f"sqlite:///{path}")
    assert store.job("old1").status == "completed"
    with Worker(threads=1, store=store) as w:
        assert w.submit(two).result(10) == 2
    assert len(store.jobs()) == 2
    store.close()
    # Every step applied; an old store is not keyed, so it records the version AetherFlow 5 still opens.
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        str(UNKEYED_VERSION),
    )


def test_job_ids_do_not_repeat_after_random_seed(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    with Worker(threads=2, store=store) as w:
        ids = []
        for _ in range(5):
            random.seed(42)
            ids.append(w.submit(one).id)
        assert all(j.result(10) == 1 for j in (w.submit(one),))
    assert len(set(ids)) == 5
    assert {j.id for j in store.jobs(limit=100)} >= set(ids)
    store.close()


# -- PostgreSQL under fire ------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns


def test_a_refused_postgresql_connection_fails_fast_with_store_error() -> None:
    pytest.importorskip("psycopg")
    started = time.monotonic()
    with pytest.raises(
        StoreError, match="Cannot connect to PostgreSQL at postgresql://nobody@127.0.0.1:.*Is the server running"
    ):
        open_store(f"postgresql://nobody:sekrit@127.0.0.1:{_closed_port()}/none")
    assert time.monotonic() - started < 6


def test_an_unanswering_postgresql_server_fails_within_the_connect_timeout() -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as listener:  # accepts TCP connections, never speaks
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StoreError, match="Cannot connect to PostgreSQL"):
            open_store(f"postgresql://nobody@127.0.0.1:{port}/none", connect_timeout=2)
        assert time.monotonic() - started < 6


@pytest.mark.postgres
def test_terminated_postgresql_backends_lose_and_duplicate_nothing() -> None:
    import psycopg

    url = postgres_url()
    store = open_store(url)
    stop = threading.Event()
    killed = [0]

    def terminate_backends() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            while not stop.is_set():
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                killed[0] += sum(1 for (ok,) in rows if ok)
                time.sleep(0.03)

    @node
    def first(n: int) -> int:
        time.sleep(0.01)  # long enough for backends to be terminated mid-job
        return n

    @node
    def second(first: int, job_state) -> int:
        job_state.set("seen", first)
        return first * 2

    flow = first.then(second).named("under-fire")
    acknowledged: dict[str, int] = {}
    errors: list[BaseException] = []

    def submitter(t: int) -> None:
        with Worker(threads=2, store=store) as w:
            for k in range(30):
                n = t * 100 + k
                try:
                    job = w.submit(flow, {"n": n})
                    acknowledged[job.id] = job.result(60)
                except Exception as exc:  # noqa: BLE001 - checked below: never a raw psycopg error
                    errors.append(exc)

    killer = threading.Thread(target=terminate_backends)
    killer.start()
    threads = [threading.Thread(target=submitter, args=(t,)) for t in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
    finally:
        stop.set()
        killer.join(10)
    assert killed[0] > 0, "no backend was terminated: the fault was not injected"
    assert not [e for e in errors if not isinstance(e, (StoreError, NodeError))], errors
    assert not [e for e in errors if type(e).__module__.startswith("psycopg")]
    for job_id, output in acknowledged.items():
        rec = store.job(job_id)
        assert (rec.status, rec.output) == ("completed", output)
        runs = store.node_runs(job_id)
        assert sorted(r.node for r in runs) == ["first", "second"]  # no duplicated run
        assert [h.key for h in store.state_history(job_id)] == ["seen"]
        types = [e.type for e in store.events(job_id)]
        assert types.count("job_created") == 1 and types.count("node_completed") == 2
    store.close()
    print(
        f"terminated {killed[0]} backends; {len(acknowledged)} jobs acknowledged, {len(errors)} refused with StoreError; lost 0, duplicated 0"
    )


# -- raw errors at the boundary ---------------------------------------------------------------


def test_a_corrupt_sqlite_file_is_a_store_error_that_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(
        StoreError, match=r"Cannot open SQLite store at .*runs.db: DatabaseError: file is not a database.*move it aside"
    ):
        open_store(f"sqlite:///{path}")


@contextlib.contextmanager
def small_tmpfs(tmp_path: Path, size: str = "2m") -> Iterator[Path]:
    where = tmp_path / "small"
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root and mount rights): {exc}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True, timeout=10)


def test_a_full_disk_is_a_store_error_and_no_job_is_left_running(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path) as disk:
        store = open_store(f"sqlite:///{disk / 'runs.db'}")

        @node
        def big(i: int) -> str:
            return "x" * 50_000 + str(i)

        acknowledged, refused = [], []
        with Worker(threads=4, store=store) as w:
            for i in range(120):
                try:
                    job = w.submit(big, {"i": i})
                except Exception as exc:  # noqa: BLE001 - checked below
                    refused.append(exc)
                    continue
                with contextlib.suppress(NodeError, StoreError):  # a result the store lacks is refused too
                    job.result(30)
                    acknowledged.append(job.id)
        assert refused, "the disk never filled up: the fault was not injected"
        assert all(isinstance(e, StoreError) for e in refused), {type(e) for e in refused}
        assert "disk" in str(refused[0]) and "full" in str(refused[0])
        for job_id in acknowledged:  # result() returned: the store has the job completed
            assert store.job(job_id).status == "completed"
        store.close()


def test_a_store_on_a_read_only_mount_can_still_be_read(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path, "8m") as disk:
        url = f"sqlite:///{disk / 'runs.db'}"
        with Worker(threads=1, store=url) as w:
            job_id = w.submit(five).id
        if subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, timeout=10).returncode:
            pytest.skip("cannot remount the tmpfs read-only")
        store = open_store(url)
        assert store.job(job_id).output == 5
        assert [r.node for r in store.node_runs(job_id)] == ["five"]
        with pytest.raises(StoreError, match="read-only"):
            store.create_job("x", "f", {}, "w", time.time())
        store.close()


def test_store_files_and_folders_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = open_store(f"sqlite:///{tmp_path / 'new' / 'deeper' / 'runs.db'}")
        with Worker(threads=1, store=store) as w:
            w.submit(one).result(10)
        store.close()
    finally:
        os.umask(old)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "new" / "deeper").stat().st_mode & 0o777 == 0o700
    for f in (tmp_path / "new" / "deeper").iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f


def test_opening_a_store_on_a_full_disk_shows_the_real_error(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path) as disk:
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as f:  # fill it to the last byte
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        with pytest.raises(StoreError) as caught:
            open_store(f"sqlite:///{disk / 'runs.db'}")
    message = str(caught.value)
    assert "cannot rollback" not in message
    assert "full" in message and "free some space" in message, message


def test_a_folder_where_the_store_file_should_be_is_a_clear_store_error(tmp_path: Path) -> None:
    (tmp_path / "runs.db").mkdir()
    with pytest.raises(
        StoreError, match=r"Cannot open SQLite store at .*runs.db: OperationalError: unable to open database file"
    ):
        open_store(f"sqlite:///{tmp_path / 'runs.db'}")


@pytest.mark.postgres
def test_batch_ids_do_not_grow_without_bound() -> None:
    import psycopg

    from aetherflow.store import sql

    url = postgres_url()
    store = open_store(url)
    for i in range(sql._BATCH_IDS_KEPT + 50):
        store.create_job(f"job-{i}", "bounded", {}, "w", float(i))
    store.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM write_batches").fetchone()[0] <= sql._BATCH_IDS_KEPT
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == sql._BATCH_IDS_KEPT + 50


# -- group commit across jobs (PostgreSQL) -------------------------------------------------------


@pytest.mark.postgres
def test_concurrent_jobs_share_transactions_and_sync_still_commits_before_successors() -> None:
    """16 jobs at once: fewer transactions than node runs, and no step starts before its predecessor is in."""
    import psycopg

    url = postgres_url()
    steps, jobs = 12, 16
    seen: list[tuple[int, int]] = []  # (predecessors the job has run, completed runs another connection sees)
    local = threading.local()
    checkers: list[Any] = []

    @node
    def step(x: int, execution: Any, job_state: Any) -> int:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(url, autocommit=True)
            checkers.append(conn)
        # From a second connection: the predecessor's commit must already be in the database.
        committed = conn.execute(
            "SELECT count(*) FROM node_runs WHERE job_id = %s AND status = 'completed'",
            (execution.job_id,),
        ).fetchone()[0]
        seen.append((x, committed))
        job_state.set("x", x)
        return x + 1

    chain = step.repeat(steps)
    store = open_store(url, durability="sync")
    writer = store._writer  # type: ignore[attr-defined]
    try:
        with Worker(threads=jobs, store=store) as w:
            batches, items = writer.batches, writer.items
            submitted = [w.submit(chain, {"x": 0}) for _ in range(jobs)]
            assert [j.result(60) for j in submitted] == [steps] * jobs
            batches, items = writer.batches - batches, writer.items - items
        assert len(seen) == steps * jobs
        assert all(committed == x for x, committed in seen), [s for s in seen if s[0] != s[1]][:5]
        node_runs = steps * jobs
        assert items >= node_runs  # every node run went through the writer (and job records)
        assert batches < node_runs, f"{batches} transactions for {node_runs} node runs: no group commit across jobs"
        for j in submitted:
            assert [r.status for r in store.node_runs(j.id)] == ["completed"] * steps
            assert [s.value for s in store.state_history(j.id, "x")] == list(range(steps))
    finally:
        store.close()
        for conn in checkers:
            conn.close()


def test_concurrent_jobs_on_sqlite_share_transactions_and_sync_still_commits_before_successors(
    tmp_path: Path,
) -> None:
    """16 jobs at once on SQLite: several node runs per transaction, and no step starts before its predecessor is in."""
    db = tmp_path / "runs.db"
    steps, jobs = 12, 16
    seen: list[tuple[int, int]] = []  # (predecessors the job has run, completed runs another connection sees)
    local = threading.local()
    checkers: list[sqlite3.Connection] = []

    @node
    def step(x: int, execution: Any, job_state: Any) -> int:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = sqlite3.connect(db, check_same_thread=False)
            checkers.append(conn)
        committed = conn.execute(
            "SELECT count(*) FROM node_runs WHERE job_id = ? AND status = 'completed'", (execution.job_id,)
        ).fetchone()[0]
        seen.append((x, committed))
        job_state.set("x", x)
        return x + 1

    chain = step.repeat(steps)
    store = open_store(f"sqlite:///{db}", durability="sync")
    writer = store._writer  # type: ignore[attr-defined]
    try:
        with Worker(threads=jobs, store=store) as w:
            chain.run({"x": 0}, worker=w)
            batches, items = writer.batches, writer.items
            submitted = [w.submit(chain, {"x": 0}) for _ in range(jobs)]
            assert [j.result(60) for j in submitted] == [steps] * jobs
            batches, items = writer.batches - batches, writer.items - items
        assert all(committed == x for x, committed in seen), [s for s in seen if s[0] != s[1]][:5]
        node_runs = steps * jobs
        assert items >= node_runs
        assert items / batches >= 2, f"{batches} transactions for {items} records: little group commit across jobs"
    finally:
        store.close()
        for conn in checkers:
            conn.close()
