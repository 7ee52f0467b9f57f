"""What SQLite and PostgreSQL stores share: the schema, the records written, the queries.

Writes are turned into statements on the caller's thread (so a value that cannot be
stored fails the node that produced it) and committed by a `BatchWriter`. A dialect
subclass supplies connections, the placeholder style, DDL types and which errors are
worth retrying.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import os
import pickle
import socket
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from ..errors import StoreError
from ..runs import RunFacts
from ..sentinels import DELETED, UNSET
from ..state import StateScope
from ..status import ENDED, FINISHED, JobStatus, NodeStatus
from .base import Progress, Store, pending_answer
from .jsontext import redact_secrets, storable_text, to_json  # not .serialize: it brings pydantic
from .records import EventRecord, FlowStats, JobRecord, NodeRunRecord, StateRecord, WorkerRecord, epoch, utc
from .stats import flow_stats
from .writer import BatchWriter, retry

Statement = tuple[str, list[tuple[Any, ...]]]  # SQL with "?" placeholders, rows of parameters

SCHEMA_VERSION = 6
# What a store that is not keyed (see `migrations`) records: step 6 changed nothing in it,
# so AetherFlow at version 5 can still open it (a rollback, a fleet upgraded host by host).
# A later step that changes every store's tables makes every store record SCHEMA_VERSION.
UNKEYED_VERSION = 5
_BATCH_IDS_KEPT = 1000  # per store, at most: far more than can be in doubt (one batch commits at a time)
_BATCH_IDS_DROPPED = 100  # ... dropped this many at a time, so at least 900 are kept
_TEXT: dict[Any, str] = {member: member.value for enum in (JobStatus, NodeStatus, StateScope) for member in enum}


def migrations(real: str, serial_pk: str, keyed: bool = False) -> list[tuple[int, list[str]]]:
    """Versioned schema steps; a store applies the ones newer than its recorded version.

    ``keyed`` (SQLite stores created at version 6 or later): each job has a number, and its
    records' keys are that number times 2**32 plus their own, so a job's records lie
    together in their tables and no per-job index is needed (see `insert_sql`).
    """
    return [
        (
            1,
            [
                f"CREATE TABLE jobs ({'num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE' if keyed else 'id TEXT PRIMARY KEY'}, flow TEXT NOT NULL, status TEXT NOT NULL, inputs TEXT, output TEXT, error TEXT, created_at {real} NOT NULL, started_at {real}, finished_at {real}, worker TEXT)",
                "CREATE INDEX jobs_created ON jobs (created_at)",
                "CREATE INDEX jobs_flow_created ON jobs (flow, created_at)",
                "CREATE INDEX jobs_status_created ON jobs (status, created_at)",
                f"CREATE TABLE node_runs (id {serial_pk}, job_id TEXT NOT NULL, node TEXT NOT NULL, iteration INTEGER, attempt INTEGER, status TEXT NOT NULL, thread TEXT, started_at {real}, finished_at {real}, output TEXT, item INTEGER, error TEXT, traceback TEXT)",
                *([] if keyed else ["CREATE INDEX node_runs_job ON node_runs (job_id, id)"]),
                f"CREATE TABLE state_writes (id {serial_pk}, job_id TEXT NOT NULL, scope TEXT NOT NULL, namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT, deleted INTEGER NOT NULL, version INTEGER NOT NULL, node TEXT, ts {real})",
                *([] if keyed else ["CREATE INDEX state_writes_job ON state_writes (job_id, id)"]),
                f"CREATE TABLE state_snapshots (id {serial_pk}, job_id TEXT NOT NULL, upto INTEGER NOT NULL, data TEXT NOT NULL, ts {real})",
                "CREATE INDEX state_snapshots_job ON state_snapshots (job_id, id)",
                f"CREATE TABLE events (seq {serial_pk}, job_id TEXT NOT NULL, ts {real} NOT NULL, type TEXT NOT NULL, node TEXT, data TEXT)",
                *([] if keyed else ["CREATE INDEX events_job ON events (job_id, seq)"]),
                f"CREATE TABLE workers (id TEXT PRIMARY KEY, pid INTEGER, host TEXT, heartbeat {real})",
                "CREATE TABLE targets (flow TEXT PRIMARY KEY, target TEXT NOT NULL)",
            ],
        ),
        # Each worker's own lease, so a claimer with a shorter one cannot take a live worker's jobs.
        (2, [f"ALTER TABLE workers ADD COLUMN lease {real}"]),
        # Every transaction also writes its batch id here: a retry after a lost connection
        # first asks whether that id is in, so a batch that did commit is not written twice.
        (
            3,
            [
                f"CREATE TABLE write_batches (id TEXT PRIMARY KEY, ts {real} NOT NULL)",
            ],
        ),
        # Each flow's shape as JSON (vertices, edges, branch labels), so the dashboard draws any job.
        (4, ["CREATE TABLE topologies (flow TEXT PRIMARY KEY, topology TEXT NOT NULL)"]),
        # A job's owning process (pid and host), so a worker's liveness is judged per job even
        # when two live processes share a worker name; and the claim that made it the owner,
        # so a claimer can tell that its own compare-and-set won.
        (
            5,
            [
                "ALTER TABLE jobs ADD COLUMN pid INTEGER",
                "ALTER TABLE jobs ADD COLUMN host TEXT",
                f"ALTER TABLE jobs ADD COLUMN pstart {real}",
                "ALTER TABLE jobs ADD COLUMN claim TEXT",
            ],
        ),
        # Nothing changes in an existing store: the version says that the store may be keyed
        # (SQLite stores created from now on), which an AetherFlow before it could not write,
        # so that one refuses the store instead of failing every write.
        (6, []),
    ]


# A keyed store (see `migrations`) numbers a job's records within 2**32 keys from its
# job's number times 2**32: a new job's records are appended at the end of each table (a
# rowid table's quick split, one page per table per commit), and a job's records are a
# range of keys, found through the job's row. ~3.3 WAL pages per node run instead of ~7.
_SPAN = 2**32 - 1
_RECORD_KEYS = {"node_runs": "id", "state_writes": "id", "events": "seq"}
_NODE_RUN = "job_id, node, iteration, attempt, status, thread, started_at, finished_at, output, item, error, traceback"
_STATE_WRITE = "job_id, scope, namespace, key, value, deleted, version, node, ts"
_EVENT = "job_id, ts, type, node, data"


@functools.cache
def insert_sql(table: str, columns: str, keyed: bool, only_if: str = "") -> str:
    """An INSERT of one record of a job (``columns`` start with ``job_id``), only if ``only_if`` holds (if given).

    Keyed, the record's key is the job's last plus one, taken inside the transaction that
    inserts it: a store is written one transaction at a time, by any number of processes,
    so two records of a job never get one key. A record of a job with no row gets the next
    rowid instead.
    """
    count = columns.count(",") + 1
    if not keyed:
        if not only_if:
            return f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' for _ in range(count))})"
        return f"INSERT INTO {table} ({columns}) SELECT {', '.join('?' for _ in range(count))} WHERE {only_if}"
    key = _RECORD_KEYS[table]
    # Numbered parameters, since ?1 (the job) is used again; a plain "?" in only_if takes the next number.
    values = ", ".join(f"?{i}" for i in range(1, count + 1))
    lo = "(SELECT num << 32 FROM jobs WHERE id = ?1)"
    following = f"(SELECT COALESCE(MAX({key}), {lo}) + 1 FROM {table} WHERE {key} BETWEEN {lo} AND {lo} + {_SPAN})"
    if not only_if:
        # VALUES, not INSERT ... SELECT: a SELECT that reads the table it inserts into is
        # first copied to a temporary table (3 µs more per record).
        return f"INSERT INTO {table} ({key}, {columns}) VALUES ({following}, {values})"
    return f"INSERT INTO {table} ({key}, {columns}) SELECT {following}, {values} WHERE {only_if}"


@functools.cache
def of_job(table: str, keyed: bool) -> str:
    """The condition "a record of the job given as the first parameter" on ``table``."""
    if not keyed:
        return "job_id = ?"
    key = _RECORD_KEYS[table]
    return (
        f"{key} BETWEEN (SELECT num << 32 FROM jobs WHERE id = ?1) AND (SELECT (num << 32) + {_SPAN} FROM jobs WHERE id = ?1) "
        "AND job_id = ?1"
    )


def of_job_row(table: str, keyed: bool, records: str, job: str) -> str:
    """The join condition "record ``records`` is of job ``job``" (table aliases)."""
    if not keyed:
        return f"{records}.job_id = {job}.id"
    key = _RECORD_KEYS[table]
    return f"{records}.{key} BETWEEN {job}.num << 32 AND ({job}.num << 32) + {_SPAN} AND {records}.job_id = {job}.id"


def migrate(
    current: int, execute: Callable[[str], Any], real: str, serial_pk: str, where: str, *, keyed: bool = False
) -> None:
    """Apply the schema steps newer than ``current``, through ``execute`` (inside a transaction)."""
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {current}, newer than this AetherFlow knows ({SCHEMA_VERSION}); upgrade aetherflow."
        )
    for version, steps in migrations(real, serial_pk, keyed):
        if version > current:
            for step in steps:
                execute(step)


class SQLStore(Store):
    """A store on a SQL database, written through one batching writer thread."""

    persistent = True
    null_safe_eq = "IS"  # how the dialect compares two values that may both be NULL
    # Whether a failed transaction may have committed after all (a connection lost after
    # COMMIT was sent): then every transaction records its batch id, and a retry first
    # looks it up. An embedded database knows: SQLite's retryable errors (locked, busy)
    # leave the transaction uncommitted, so it skips the extra row (one more page per commit).
    commit_outcome_can_be_lost = True
    # The longest a group-commit leader waits for callers known to be on their way
    # (BatchWriter._gather), unless the store is opened with ``group_wait=``. Measured per
    # dialect (docs/benchmarks.md): off on PostgreSQL, where it made batches larger but not
    # faster; on SQLite a batch's fixed cost (the transaction, its table pages) is most of
    # a commit, so larger batches pay.
    default_group_wait = 0.0
    # Whether this store's job records are keyed by job (see `migrations`): set by the
    # dialect when it opens the store, since older stores keep their layout.
    keyed = False

    def __init__(
        self,
        url: str,
        *,
        durability: str = "sync",
        pickle: bool = False,
        redact: Callable[[Any], Any] | None = None,
        snapshot_every: int = 100,
        group_wait: float | None = None,
    ) -> None:
        self.url = url
        self.pickle = pickle
        self.redact = redact
        self.snapshot_every = snapshot_every
        self._live: dict[str, dict[str, Any]] = {}  # job -> state as committed, for snapshots
        self._live_lock = threading.Lock()
        # Batch ids: this store's random prefix and a counter, unique across processes.
        self._batch_prefix = uuid.uuid4().hex[:16]
        self._batch_numbers = itertools.count(1)
        self._migrate()
        self._writer: BatchWriter[list[Statement]] = BatchWriter(
            url.rsplit("/", 1)[-1],
            self._transact,
            sync=durability == "sync",
            isolate=self._refused_by_data,
            max_wait=self.default_group_wait if group_wait is None else group_wait,
        )

    # -- dialect ------------------------------------------------------------------------

    @abstractmethod
    def _execute_batch(self, statements: list[Statement]) -> None:
        """Run statements in one transaction on the writer's connection."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Any]:
        """A cursor-like object for queries, usable from any thread."""

    @abstractmethod
    def _retryable(self, exc: BaseException) -> bool: ...

    @abstractmethod
    def _migrate(self) -> None: ...

    def _fix_for(self, exc: BaseException) -> str:
        """What a user can do about a database error (the dialect knows its errors)."""
        return "Check that the database is reachable and writable, then run again."

    def _store_error(self, doing: str, exc: BaseException) -> StoreError:
        """A database error as a `StoreError`: what failed, where, the cause, and a fix."""
        if isinstance(exc, StoreError):
            return exc
        cause = storable_text(str(exc)) or type(exc).__name__
        return StoreError(f"Could not {doing} {self.url}: {type(exc).__name__}: {cause}. {self._fix_for(exc)}")

    def _sql(self, sql: str) -> str:
        return sql

    # -- values ----------------------------------------------------------------------------

    def _dump(self, value: Any) -> str | None:
        if value is UNSET or value is None:
            return None
        if self.redact is not None:
            value = self.redact(value)
        if self.pickle:
            return "pickle:" + base64.b64encode(pickle.dumps(redact_secrets(value))).decode()
        return to_json(value)

    def _load(self, text: str | None) -> Any:
        if text is None:
            return None
        if text.startswith("pickle:"):
            if not self.pickle:
                raise StoreError(
                    f"{self.url} holds pickled values; open it with pickle=True to read them (only if you trust who wrote them)."
                )
            return pickle.loads(base64.b64decode(text[7:]))
        return json.loads(text)

    # -- writes ----------------------------------------------------------------------------

    def _insert(self, table: str, columns: str, only_if: str = "") -> str:
        return insert_sql(table, columns, self.keyed, only_if)

    def _of_job(self, table: str) -> str:
        return of_job(table, self.keyed)

    def _submit(self, statements: list[Statement]) -> None:
        self._writer.submit(statements)

    def _transact(self, batch: list[list[Statement]]) -> None:
        """Commit ``batch`` in one transaction, retrying what is worth it, at most once in effect.

        The transaction also records a batch id; a retry (after a lost connection, whose
        COMMIT may or may not have landed) first asks whether that id is in the store.
        """
        statements = [s for item in batch for s in item]
        if not self.commit_outcome_can_be_lost:
            write: Callable[[], None] = lambda: self._execute_batch(statements)  # noqa: E731
        else:
            number = next(self._batch_numbers)
            batch_id = f"{self._batch_prefix}-{number}"
            statements.append(("INSERT INTO write_batches (id, ts) VALUES (?, ?)", [(batch_id, time.time())]))
            if number >= _BATCH_IDS_KEPT and number % _BATCH_IDS_DROPPED == 0:
                # Batches commit one at a time, so an id this old is settled: drop them, a
                # hundred at a time (one statement in a hundred batches, not one in each),
                # keeping the table at most _BATCH_IDS_KEPT rows per store; prune() clears
                # crashed ones.
                first = number - _BATCH_IDS_KEPT + 1
                statements.append(
                    (
                        "DELETE FROM write_batches WHERE id = ?",
                        [(f"{self._batch_prefix}-{n}",) for n in range(first, first + _BATCH_IDS_DROPPED)],
                    )
                )
            tries = itertools.count()

            def write() -> None:
                if next(tries) and self._committed(batch_id):
                    return
                self._execute_batch(statements)

        try:
            retry(f"write to {self.url}", write, self._retryable)
        except Exception as exc:
            raise self._store_error("write to", exc) from exc

    def _committed(self, batch_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM write_batches WHERE id = ?", [batch_id]))

    def _refused_by_data(self, error: BaseException) -> bool:
        """Whether a failed batch may succeed item by item (not when the database is unreachable)."""
        cause = error.__cause__ if isinstance(error, StoreError) and error.__cause__ is not None else error
        return not self._retryable(cause)

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
        status = JobStatus.RUNNING if running else JobStatus.PENDING
        flow = storable_text(flow)  # type: ignore[assignment]
        events = [(job_id, ts, "job_created", None, self._dump({"flow": flow}))]
        if running:
            events.append((job_id, ts, "job_running", None, None))
        self._submit(
            [
                (
                    "INSERT INTO jobs (id, flow, status, inputs, created_at, started_at, worker, pid, host, pstart) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    [
                        (
                            job_id,
                            flow,
                            status.value,
                            self._dump(inputs),
                            ts,
                            ts if running else None,
                            storable_text(worker),
                            *((*process, None, None)[:3] if process else _this_process()),
                        )
                    ],
                ),
                (self._insert("events", _EVENT), events),
            ]
        )

    def set_job_status(
        self, job_id: str, status: JobStatus, ts: float, *, output: Any = UNSET, error: str | None = None
    ) -> None:
        self._submit(self._status_statements(job_id, status, ts, output, error))

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
        cls = type(self)
        if cls.record_run is not SQLStore.record_run or cls.set_job_status is not SQLStore.set_job_status:
            # A subclass's own writes (to audit them, say) hear the run and the end: one at a time.
            super().end_job(job_id, status, ts, output=output, error=error, last_run=last_run)
            return
        run = [] if last_run is None else self._run_statements(last_run)  # first: it feeds the job's snapshot
        self._submit(run + self._status_statements(job_id, status, ts, output, error))

    def _status_statements(
        self, job_id: str, status: JobStatus, ts: float, output: Any, error: str | None
    ) -> list[Statement]:
        sets = ["status = ?", "error = ?"]
        error = storable_text(error)
        params: list[Any] = [status.value, error]
        if status is JobStatus.RUNNING:
            sets.append("started_at = COALESCE(started_at, ?)")
            params.append(ts)
        if status in ENDED:
            sets.append("finished_at = ?")
            params.append(ts)
        if output is not UNSET:
            sets.append("output = ?")
            params.append(self._dump(output))
        if status in FINISHED:
            with self._live_lock:
                self._live.pop(job_id, None)
        # Only the job's owning process changes its status: a worker that was silent past its
        # lease and wakes must not overwrite what the process that took the job over records.
        owned = f"(pid IS NULL OR (pid = ? AND host = ? AND pstart {self.null_safe_eq} ?))"
        me = _this_process()
        return [
            (f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND {owned}", [(*params, job_id, *me)]),
            (
                self._insert("events", _EVENT, f"EXISTS (SELECT 1 FROM jobs WHERE id = ? AND {owned})"),
                [
                    (
                        job_id,
                        ts,
                        f"job_{status.value}",
                        None,
                        self._dump({"error": error}) if error else None,
                        job_id,
                        *me,
                    )
                ],
            ),
        ]

    def record_run(self, facts: RunFacts) -> None:
        self._submit(self._run_statements(facts))

    def _run_statements(self, facts: RunFacts) -> list[Statement]:
        f = facts
        status = _TEXT[f.status]
        node, error = storable_text(f.node), storable_text(f.error)
        statements: list[Statement] = [
            (
                self._insert("node_runs", _NODE_RUN),
                [
                    (
                        f.job_id,
                        node,
                        f.iteration,
                        f.attempt,
                        status,
                        storable_text(f.thread),
                        f.started,
                        f.finished,
                        self._dump(f.output),
                        f.item,
                        error,
                        storable_text(f.traceback),
                    )
                ],
            ),
        ]
        # Event data of fixed shape is written as text directly: this runs for every node.
        events: list[tuple[Any, ...]] = [
            (f.job_id, f.started, "node_started", node, f'{{"iteration":{f.iteration},"attempt":{f.attempt}}}')
        ]
        writes = []
        for c in f.commits:
            scope = _TEXT[c.scope]
            for w in c.writes:
                deleted = w.value is DELETED
                writes.append(
                    (
                        f.job_id,
                        scope,
                        storable_text(c.namespace),
                        storable_text(w.key),
                        None if deleted else self._dump(w.value),
                        int(deleted),
                        w.version,
                        node,
                        c.ts,
                    )
                )
            events.append(
                (f.job_id, c.ts, "state_committed", node, to_json({"scope": scope, "keys": [w.key for w in c.writes]}))
            )
        events.append((f.job_id, f.finished, "node_" + status, node, self._dump({"error": error}) if error else None))
        if writes:
            statements.append(
                (
                    self._insert("state_writes", _STATE_WRITE),
                    writes,
                )
            )
            statements.extend(self._snapshot_if_due(f.job_id, writes, f.finished))
        statements.append((self._insert("events", _EVENT), events))
        return statements

    def _snapshot_if_due(self, job_id: str, writes: list[tuple[Any, ...]], ts: float) -> list[Statement]:
        """Every ``snapshot_every`` commits of a job, a full copy of its state (faster resume)."""
        with self._live_lock:
            live = self._live.setdefault(job_id, {"count": 0, "state": {}})
            for _, scope, namespace, key, value, deleted, version, _, _ in writes:
                if scope != "worker":
                    live["state"][f"{scope}\x1f{namespace}\x1f{key}"] = [value, deleted, version]
            live["count"] += 1
            if live["count"] % self.snapshot_every:
                return []
            data = json.dumps(live["state"])
        return [
            (
                f"INSERT INTO state_snapshots (job_id, upto, data, ts) VALUES (?, (SELECT COALESCE(MAX(id), 0) FROM state_writes WHERE {self._of_job('state_writes')}), ?, ?)",
                [(job_id, data, ts) if self.keyed else (job_id, job_id, data, ts)],
            )
        ]

    def heartbeat(self, worker: str, pid: int, host: str, ts: float, lease: float | None = None) -> None:
        self._submit(
            [
                ("DELETE FROM workers WHERE id = ?", [(worker,)]),
                (
                    "INSERT INTO workers (id, pid, host, heartbeat, lease) VALUES (?, ?, ?, ?, ?)",
                    [(worker, pid, host, ts, lease)],
                ),
            ]
        )

    def remember_target(self, flow: str, target: str) -> None:
        flow, target = storable_text(flow), storable_text(target)  # type: ignore[assignment]
        self._submit(
            [
                ("DELETE FROM targets WHERE flow = ?", [(flow,)]),
                ("INSERT INTO targets (flow, target) VALUES (?, ?)", [(flow, target)]),
            ]
        )

    def target_of(self, flow: str) -> str | None:
        rows = self._rows("SELECT target FROM targets WHERE flow = ?", [flow])
        return rows[0][0] if rows else None

    # -- the dashboard ----------------------------------------------------------------------

    def remember_topology(self, flow: str, topology_json: str) -> None:
        self._submit(
            [
                ("DELETE FROM topologies WHERE flow = ?", [(flow,)]),
                ("INSERT INTO topologies (flow, topology) VALUES (?, ?)", [(flow, topology_json)]),
            ]
        )

    def topology_of(self, flow: str) -> str | None:
        rows = self._rows("SELECT topology FROM topologies WHERE flow = ?", [flow])
        return rows[0][0] if rows else None

    def request_cancel(self, job_id: str, ts: float, by: str = "") -> None:
        self._submit(
            [
                (
                    self._insert("events", _EVENT),
                    [(job_id, ts, "cancel_requested", None, self._dump({"by": by}))],
                )
            ]
        )

    def taken_over(self, job_ids: Sequence[str]) -> list[str]:
        mine = f"pid = ? AND host = ? AND pstart {self.null_safe_eq} ?"
        taken: list[str] = []
        for k in range(0, len(job_ids), 500):
            chunk = list(job_ids[k : k + 500])
            sql = f"SELECT id FROM jobs WHERE id IN ({', '.join('?' for _ in chunk)}) AND pid IS NOT NULL AND NOT ({mine})"
            taken += [r[0] for r in self._rows(sql, [*chunk, *_this_process()])]
        return taken

    def cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        asked: list[str] = []
        for k in range(0, len(job_ids), 500):
            chunk = list(job_ids[k : k + 500])
            asked += [r[0] for r in self._rows(self._cancel_requests_sql(len(chunk)), chunk)]
        return asked

    def _cancel_requests_sql(self, count: int) -> str:
        """Which of ``count`` jobs have a cancel request since they last started running."""
        ids = ", ".join("?" for _ in range(count))
        if not self.keyed:
            return (
                f"SELECT DISTINCT c.job_id FROM events c WHERE c.type = 'cancel_requested' AND c.job_id IN ({ids}) "
                "AND c.seq > COALESCE((SELECT MAX(r.seq) FROM events r WHERE r.job_id = c.job_id AND r.type = 'job_running'), 0)"
            )
        return (
            f"SELECT DISTINCT j.id FROM jobs j JOIN events c ON {of_job_row('events', True, 'c', 'j')} "
            f"WHERE j.id IN ({ids}) AND c.type = 'cancel_requested' AND c.seq > COALESCE("
            f"(SELECT MAX(r.seq) FROM events r WHERE {of_job_row('events', True, 'r', 'j')} AND r.type = 'job_running'), 0)"
        )

    def status_counts(self, flow: str | None = None) -> dict[str, int]:
        rows = self._rows(
            "SELECT status, COUNT(*) FROM jobs" + (" WHERE flow = ?" if flow else "") + " GROUP BY status",
            [flow] if flow else [],
        )
        return {status: int(n) for status, n in rows}

    def flows(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT flow FROM jobs ORDER BY flow")]

    def workers(self, now: float, lease: float = 30.0) -> list[WorkerRecord]:
        rows = self._rows("SELECT id, pid, host, heartbeat, lease FROM workers ORDER BY heartbeat DESC")
        return [
            WorkerRecord(w, pid, host, utc(beat), own, _owner_alive(pid, host, None, beat, own, now=now, lease=lease))
            for w, pid, host, beat, own in rows
        ]

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    # -- reads -------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._writer.flush()  # read your own writes, also with durability="async"
        try:
            return retry(f"read from {self.url}", lambda: self._query(sql, params), self._retryable)  # type: ignore[no-any-return]
        except Exception as exc:
            raise self._store_error("read from", exc) from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One query, no flush first (the writer itself asks through this)."""
        with self._reading() as cur:
            cur.execute(self._sql(sql), tuple(params))
            return list(cur.fetchall())

    _JOB_COLUMNS = "id, flow, status, inputs, output, error, created_at, started_at, finished_at, worker"

    def _job(self, row: tuple[Any, ...]) -> JobRecord:
        return JobRecord(
            row[0],
            row[1],
            JobStatus(row[2]),
            self._load(row[3]) or {},
            self._load(row[4]),
            row[5],
            utc(row[6]),
            utc(row[7]),
            utc(row[8]),
            row[9],
        )

    def jobs(
        self,
        flow: str | None = None,
        status: str | JobStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[JobRecord]:
        where, params = [], []
        for clause, value in (
            ("flow = ?", flow),
            ("status = ?", str(status) if status else None),
            ("created_at >= ?", epoch(since)),
            ("created_at < ?", epoch(until)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = (
            f"SELECT {self._JOB_COLUMNS} FROM jobs"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY created_at DESC LIMIT ?"
        )
        return [self._job(r) for r in self._rows(sql, [*params, int(limit)])]

    def job(self, job_id: str) -> JobRecord:
        rows = self._rows(f"SELECT {self._JOB_COLUMNS} FROM jobs WHERE id = ?", [job_id])
        if not rows:
            raise StoreError(f"No job {job_id!r} in {self.url}. List jobs with store.jobs() or `aetherflow jobs`.")
        return self._job(rows[0])

    def node_runs(self, job_id: str) -> list[NodeRunRecord]:
        rows = self._rows(
            f"SELECT job_id, node, iteration, attempt, status, thread, started_at, finished_at, error, traceback, item FROM node_runs WHERE {self._of_job('node_runs')} ORDER BY started_at, id",
            [job_id],
        )
        return [
            NodeRunRecord(r[0], r[1], r[2], r[3], NodeStatus(r[4]), r[5], utc(r[6]), utc(r[7]), r[8], r[9], r[10])
            for r in rows
        ]

    def events(self, job_id: str, types: Sequence[str] | None = None) -> list[EventRecord]:
        sql = f"SELECT seq, ts, type, node, data FROM events WHERE {self._of_job('events')}"
        params: list[Any] = [job_id]
        if types:
            sql += f" AND type IN ({', '.join('?' for _ in types)})"
            params.extend(types)
        rows = self._rows(sql + " ORDER BY seq", params)
        return [EventRecord(r[0], utc(r[1]), r[2], r[3], self._load(r[4]) or {}) for r in rows]

    def state_history(self, job_id: str, key: str | None = None) -> list[StateRecord]:
        sql = f"SELECT scope, namespace, key, value, version, ts, deleted FROM state_writes WHERE {self._of_job('state_writes')}"
        params: list[Any] = [job_id]
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
        rows = self._rows(sql + " ORDER BY id", params)
        return [StateRecord(r[0], r[1], r[2], self._load(r[3]), r[4], utc(r[5]), bool(r[6])) for r in rows]

    def stats(self, flow: str, since: datetime | None = None) -> FlowStats:
        lo = epoch(since) or 0.0
        statuses = [r[0] for r in self._rows("SELECT status FROM jobs WHERE flow = ? AND created_at >= ?", [flow, lo])]
        runs = self._rows(
            f"SELECT r.node, r.status, r.finished_at - r.started_at FROM node_runs r JOIN jobs j ON {of_job_row('node_runs', self.keyed, 'r', 'j')} WHERE j.flow = ? AND j.created_at >= ?",
            [flow, lo],
        )
        return flow_stats(flow, statuses, [(n, s, float(d or 0.0)) for n, s, d in runs])

    def prune(self, older_than: datetime) -> int:
        cutoff = epoch(older_than)
        ended = ("completed", "failed", "cancelled")
        still = "status IN (?, ?, ?) AND COALESCE(finished_at, created_at) < ?"
        ids = [r[0] for r in self._rows(f"SELECT id FROM jobs WHERE {still}", [*ended, cutoff])]
        # The delete checks again, in its own transaction, that each job is still ended and
        # old: another process may have resumed one since it was chosen above.
        still_pruned = f"EXISTS (SELECT 1 FROM jobs WHERE id = ? AND {still})"
        for start in range(0, len(ids), 500):
            chunk = [(i, i, *ended, cutoff) for i in ids[start : start + 500]]
            self._writer.submit(
                [
                    (f"DELETE FROM {table} WHERE {where} AND {still_pruned}", chunk)
                    for table, where in (
                        ("events", self._of_job("events")),
                        ("state_writes", self._of_job("state_writes")),
                        ("state_snapshots", "job_id = ?"),
                        ("node_runs", self._of_job("node_runs")),
                        ("jobs", "id = ?"),
                    )
                ]
            )
        # Batch ids matter only while a batch may be retried (seconds): drop those a crashed
        # process left behind.
        self._writer.submit([("DELETE FROM write_batches WHERE ts < ?", [(time.time() - 3600,)])])
        self.flush()
        return len(ids) - self._still_there(ids)

    def _still_there(self, ids: list[str]) -> int:
        """How many of ``ids`` name jobs in the store."""
        return sum(
            self._rows(f"SELECT COUNT(*) FROM jobs WHERE id IN ({', '.join('?' for _ in chunk)})", chunk)[0][0]
            for chunk in (ids[k : k + 500] for k in range(0, len(ids), 500))
        )

    def job_ids(self, prefix: str, limit: int = 2) -> list[str]:
        # Not LIKE: it reads "_" and "%" as wildcards, and SQLite's ignores case.
        rows = self._rows(
            "SELECT id FROM jobs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?", [len(prefix), prefix, int(limit)]
        )
        return [r[0] for r in rows]

    # -- recovery ------------------------------------------------------------------------------

    def progress(self, job_id: str) -> Progress:
        job = self.job(job_id)
        completed: list[tuple[str, int | None, Any]] = []
        suspended: tuple[str | None, int | None] = (None, None)
        ended: dict[tuple[str, int | None], float] = {}
        rows = self._rows(
            f"SELECT node, item, status, output, finished_at FROM node_runs WHERE {self._of_job('node_runs')} ORDER BY id",
            [job_id],
        )
        for node, item, status, output, finished in rows:
            ended[(node, item)] = max(finished or 0.0, ended.get((node, item), 0.0))
            if status == NodeStatus.COMPLETED.value:
                completed.append((node, item, self._load(output)))
            elif status == NodeStatus.SUSPENDED.value:
                suspended = (node, item)
        answers = self._rows(
            f"SELECT ts, data FROM events WHERE {self._of_job('events')} AND type = 'job_answered' ORDER BY seq DESC LIMIT 1",
            [job_id],
        )
        answered = None
        if answers:
            data = self._load(answers[0][1])
            answered = (answers[0][0], data["node"], data.get("item"), data["answer"])
        token = self._rows("SELECT claim FROM jobs WHERE id = ?", [job_id])[0][0]
        return Progress(
            job, completed, self._state_of(job_id), suspended[0], suspended[1], pending_answer(answered, ended), token
        )

    def _state_of(self, job_id: str) -> dict[tuple[str, str], dict[str, tuple[Any, int]]]:
        raw = self._raw_state(job_id)
        with self._live_lock:  # this process's snapshots of the job start from all of it, not only its own commits
            self._live[job_id] = {"count": 0, "state": raw}
        state: dict[tuple[str, str], dict[str, tuple[Any, int]]] = {}
        for joined, (value, deleted, version) in raw.items():
            scope, namespace, key = joined.split("\x1f")
            state.setdefault((scope, namespace), {})[key] = (UNSET if deleted else self._load(value), version)
        return state

    def _raw_state(self, job_id: str) -> dict[str, list[Any]]:
        """The job's committed state as stored: ``{"scope\x1fnamespace\x1fkey": [value text, deleted, version]}``."""
        raw: dict[str, list[Any]] = {}
        upto = 0
        snap = self._rows("SELECT upto, data FROM state_snapshots WHERE job_id = ? ORDER BY id DESC LIMIT 1", [job_id])
        if snap:
            upto = snap[0][0]
            raw.update(json.loads(snap[0][1]))
        rows = self._rows(
            f"SELECT scope, namespace, key, value, deleted, version FROM state_writes WHERE {self._of_job('state_writes')} AND id > ? AND scope <> 'worker' ORDER BY id",
            [job_id, upto],
        )
        for scope, namespace, key, value, deleted, version in rows:
            raw[f"{scope}\x1f{namespace}\x1f{key}"] = [value, deleted, version]
        return raw

    # The owning process of a job: the one recorded with it, else (older rows) its worker's last heartbeat's.
    _OWNER = "COALESCE(j.pid, w.pid), COALESCE(j.host, w.host), j.pstart, w.heartbeat, w.lease FROM jobs j LEFT JOIN workers w ON w.id = j.worker"

    def orphaned_jobs(self, lease: float, now: float) -> list[str]:
        rows = self._rows(f"SELECT j.id, {self._OWNER} WHERE j.status IN ('pending', 'running') ORDER BY j.created_at")
        return [job_id for job_id, *owner in rows if not _owner_alive(*owner, now=now, lease=lease)]

    def owner_alive(self, job_id: str, now: float, lease: float) -> bool:
        rows = self._rows(f"SELECT {self._OWNER} WHERE j.id = ?", [job_id])
        return bool(rows) and _owner_alive(*rows[0], now=now, lease=lease)

    def claim(
        self,
        job_id: str,
        worker: str,
        seen: str | None,
        status: JobStatus,
        answered: tuple[str, int | None, Any] | None = None,
        becomes: JobStatus = JobStatus.RUNNING,
    ) -> bool:
        # Compare-and-set on the claim token and status the claimer saw, writing a new token:
        # of several claims of one view (also from one worker), only the first update
        # matches; a view someone claimed since matches nothing; the winner finds its token.
        now, token = time.time(), uuid.uuid4().hex
        events: list[tuple[Any, ...]] = [(job_id, now, f"job_{becomes.value}", None, None, job_id, token)]
        if answered:
            events.append(
                (
                    job_id,
                    now,
                    "job_answered",
                    None,
                    self._dump({"node": answered[0], "item": answered[1], "answer": answered[2]}),
                    job_id,
                    token,
                )
            )
        self._writer.submit(
            [
                (
                    f"UPDATE jobs SET worker = ?, claim = ?, pid = ?, host = ?, pstart = ?, status = ?, started_at = COALESCE(started_at, ?), "
                    f"finished_at = {'?' if becomes in ENDED else 'NULL'} WHERE id = ? AND claim {self.null_safe_eq} ? AND status = ?",
                    [
                        (
                            worker,
                            token,
                            *_this_process(),
                            becomes.value,
                            now,
                            *((now,) if becomes in ENDED else ()),
                            job_id,
                            seen,
                            status.value,
                        )
                    ],
                ),
                (
                    self._insert("events", _EVENT, "EXISTS (SELECT 1 FROM jobs WHERE id = ? AND claim = ?)"),
                    events,
                ),
            ]
        )
        return bool(self._rows("SELECT 1 FROM jobs WHERE id = ? AND claim = ?", [job_id, token]))


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (clock ticks since boot), or None where /proc cannot tell.

    With the pid, it names one process for good: a restarted container's worker is pid 1
    again, but not the same process as the pid 1 that left jobs behind.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return float(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


_HOST = socket.gethostname()
_PROCESS: dict[int, tuple[int, str, float | None]] = {}


def _this_process() -> tuple[int, str, float | None]:
    """(pid, host, start) recorded with the jobs this process owns: asked per pid, so a forked child is itself."""
    pid = os.getpid()
    process = _PROCESS.get(pid)
    if process is None:
        process = _PROCESS[pid] = (pid, _HOST, _process_start(pid))
    return process


def _owner_alive(
    pid: int | None,
    host: str | None,
    start: float | None,
    beat: float | None,
    own_lease: float | None,
    *,
    now: float,
    lease: float,
) -> bool:
    """A worker on this host lives as long as its process; elsewhere, as long as its heartbeat is within its lease."""
    if host == _HOST:
        return _alive(pid) and (start is None or pid is None or _process_start(pid) in (start, None))
    return beat is not None and beat >= now - (own_lease or lease)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
