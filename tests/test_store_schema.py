"""SQLite store layouts: a store made by an earlier schema keeps working, and a job's records keep one order."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aetherflow import Suspend, Worker, node, open_store
from aetherflow.status import JobStatus


@node
def prepare(job_state) -> int:
    job_state.set("prepared", True)
    return 1


@node
def approve(prepare: int, job_state, approved: bool = False) -> str:
    if not approved:
        raise Suspend("waiting for approval")
    job_state.set("approved", True)
    return "shipped"


APPROVAL = prepare.then(approve).named("approval")


def _schema_5_store(path: Path) -> None:
    """A store as AetherFlow created it at schema version 5: one index per job beside each table of records."""
    from aetherflow.store.sql import migrations

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    for version, steps in migrations("REAL", "INTEGER PRIMARY KEY"):
        if version <= 5:
            for sql in steps:
                conn.execute(sql)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '5')")
    conn.execute(
        "INSERT INTO jobs (id, flow, status, created_at, worker) VALUES ('old1', 'approval', 'completed', 1.0, 'w')"
    )
    conn.execute("INSERT INTO events (job_id, ts, type) VALUES ('old1', 1.0, 'job_created')")
    conn.commit()
    conn.close()


def test_a_schema_5_store_opens_resumes_a_job_and_answers_history(tmp_path: Path) -> None:
    """A store made before records were clustered per job still runs, suspends, resumes and is queried."""
    path = tmp_path / "old.db"
    _schema_5_store(path)
    store = open_store(f"sqlite:///{path}")
    with Worker(threads=2, store=store) as w:
        job = w.submit(APPROVAL)
        with pytest.raises(Exception, match="suspended"):
            job.result(10)
    store.close()

    store = open_store(f"sqlite:///{path}")
    with Worker(threads=2, store=store, flows=[APPROVAL]) as w:
        assert w.resume(job.id, inputs={"approved": True}).result(10) == "shipped"
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert [j.id for j in store.jobs(flow="approval", status="completed", since=hour_ago)] == [job.id]
    assert store.job("old1").status == "completed"
    assert [e.type for e in store.events("old1")] == ["job_created"]
    events = store.events(job.id)
    assert [e.type for e in events][:2] == ["job_created", "job_running"]
    assert [e.type for e in events][-1] == "job_completed"
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert [(r.node, r.status) for r in store.node_runs(job.id)] == [
        ("prepare", "completed"),
        ("approve", "suspended"),
        ("approve", "completed"),
    ]
    assert [(s.key, s.value) for s in store.state_history(job.id)] == [("prepared", True), ("approved", True)]
    store.close()


def test_a_jobs_events_from_two_processes_keep_the_order_they_were_written(tmp_path: Path) -> None:
    """A cancel asked from another process (the CLI) lands between the running job's own events, in order."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    running, cli = open_store(url), open_store(url)
    try:
        running.create_job("j1", "f", {}, "w", time.time(), running=True)
        cli.request_cancel("j1", time.time(), by="cli")
        running.set_job_status("j1", JobStatus.CANCELLED, time.time())
        cli.request_cancel("j1", time.time(), by="cli again")
        for store in (running, cli):
            events = store.events("j1")
            assert [e.type for e in events] == [
                "job_created",
                "job_running",
                "cancel_requested",
                "job_cancelled",
                "cancel_requested",
            ]
            assert [e.seq for e in events] == sorted({e.seq for e in events})
    finally:
        running.close()
        cli.close()


def test_a_stores_history_survives_vacuum_after_a_prune(tmp_path: Path) -> None:
    """`VACUUM` (which renumbers a table's implicit rowids) after pruning older jobs leaves each job's history whole."""
    path = tmp_path / "runs.db"
    store = open_store(f"sqlite:///{path}")
    with Worker(threads=2, store=store) as w:
        old = [w.submit(prepare) for _ in range(3)]
        for job in old:
            job.result(10)
        store.flush()
        cutoff = datetime.now(UTC) + timedelta(seconds=1)
        store.prune(older_than=cutoff)
        kept = w.submit(prepare.named("kept"))
        kept.result(10)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
    store = open_store(f"sqlite:///{path}")
    try:
        assert [j.id for j in store.jobs()] == [kept.id]
        assert [e.type for e in store.events(kept.id)][-1] == "job_completed"
        assert [r.node for r in store.node_runs(kept.id)] == ["prepare"]
        assert [(s.key, s.value) for s in store.state_history(kept.id)] == [("prepared", True)]
    finally:
        store.close()


def test_a_schema_5_store_written_by_this_version_still_opens_with_the_version_before(tmp_path: Path) -> None:
    """An old store keeps its layout, so the AetherFlow that made it can still open it after this one wrote to it.

    Version 6 changes nothing in an existing store (its migration step is empty); only new
    SQLite stores are keyed. But opening a schema-5 store to write (a worker, `aetherflow
    run`/`resume`/`recover`) records version 6 in it, and every AetherFlow before refuses a
    store newer than it knows ("has schema version 6, newer than this AetherFlow knows (5);
    upgrade aetherflow"): one command of the new version locks the old one (a rollback, a
    fleet upgraded one host at a time) out of a store whose tables it could still use. The
    same happens to a PostgreSQL store, which is never keyed.
    """
    path = tmp_path / "old.db"
    _schema_5_store(path)
    store = open_store(f"sqlite:///{path}")
    try:
        with Worker(threads=2, store=store) as w:
            assert w.submit(prepare).result(10) == 1
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    # What AetherFlow at schema 5 checks when it opens a store (sql.migrate, sqlite._check_readable_version).
    assert version <= 5, f"a store of the schema-5 layout now says version {version}: AetherFlow before 6 refuses it"


_flaky_calls: list[int] = []


@node
def flaky(job_state) -> str:
    """Fails on its first run, succeeds when the job is resumed."""
    _flaky_calls.append(1)
    if len(_flaky_calls) == 1:
        raise RuntimeError("first try fails")
    job_state.set("fixed", True)
    return "fixed"


def test_prune_never_deletes_a_failed_job_that_another_process_resumed_meanwhile(tmp_path: Path) -> None:
    """`prune(older_than=t)` deletes jobs finished before t; one resumed between its choice and its delete ended after t.

    prune reads the ids of finished jobs, then deletes them by id alone in a later
    transaction. A failed job resumed in between (from another process: `aetherflow
    resume`) is deleted though it ran again and ended after t, or while it still runs: its
    row, its runs and its events go (`aetherflow show` says there is no such job), and what
    a running one writes afterwards belongs to no job. On a keyed store, those later records
    also lie outside every job's range, so no prune can ever delete them. (The same race
    exists before schema 6.)
    """
    _flaky_calls.clear()
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    pruner, resumer = open_store(url), open_store(url)
    try:
        with Worker(threads=1, store=resumer) as w:
            job = w.submit(flaky)
            with pytest.raises(Exception, match="first try fails"):
                job.result(10)
        resumer.flush()
        time.sleep(0.01)
        cutoff = datetime.now(UTC)  # the failed job is older; its resumed run ends after
        time.sleep(0.01)

        choose = pruner._rows
        resumed: list[str] = []

        def rows_then_resume(sql: str, params: Any = ()) -> Any:
            found = choose(sql, params)
            if sql.startswith("SELECT id FROM jobs WHERE status IN") and not resumed:
                # The other process resumes the failed job, after prune chose it, before prune deletes.
                with Worker(threads=1, store=resumer, flows=[flaky]) as w2:
                    resumed.append(w2.resume(job.id).result(10))
            return found

        pruner._rows = rows_then_resume  # type: ignore[method-assign]
        pruner.prune(older_than=cutoff)
        assert resumed == ["fixed"]
        record = resumer.job(job.id)  # StoreError "No job ..." when the resumed job was deleted
        assert record.status == JobStatus.COMPLETED
        assert [r.status for r in resumer.node_runs(job.id)] == ["failed", "completed"]
    finally:
        pruner.close()
        resumer.close()
