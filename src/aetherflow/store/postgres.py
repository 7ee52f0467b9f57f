"""``postgresql://user@host:port/db``: the store for real deployments (psycopg 3 + a pool).

A dropped connection is not fatal: the writer reconnects and re-runs the whole
transaction, unless its batch id shows it did commit before the connection was lost
(see `SQLStore._transact`), and readers come from a pool that checks connections before
handing them out. A server that does not answer fails within ``connect_timeout`` seconds
(5 by default) with a `StoreError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import StoreError
from .sql import UNKEYED_VERSION, SQLStore, Statement, migrate, migrations

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("PostgreSQL storage needs psycopg. Install it with: pip install 'aetherflow[postgres]'") from exc

_MIGRATION_LOCK = 0x2AE7F10  # advisory lock id: one process migrates at a time


class PostgresStore(SQLStore):
    """A store in a PostgreSQL database."""

    null_safe_eq = "IS NOT DISTINCT FROM"

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 5.0, **options: Any) -> None:
        self._dsn = url
        self._conn: Any = None
        self._cursor: Any = None  # the writer's, reused
        # libpq counts whole seconds, at least 2; a timeout in the URL wins.
        self._connect_args: dict[str, Any] = (
            {} if "connect_timeout" in url else {"connect_timeout": max(2, round(connect_timeout))}
        )
        try:
            self._writer_conn()  # fails fast and clearly when the server is not there
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                open=True,
                check=ConnectionPool.check_connection,
                timeout=max(connect_timeout, 5.0),
                kwargs=self._connect_args,
            )
            self._pool.wait(timeout=max(connect_timeout, 5.0) + 1)
        except Exception as exc:
            if self._conn is not None:
                self._conn.close()
            raise StoreError(
                f"Cannot connect to PostgreSQL at {_safe(url)}: {type(exc).__name__}: {_safe_text(exc, url)}. "
                "Is the server running and reachable, and does the database exist?"
            ) from exc
        super().__init__(url, **options)
        self.url = _safe(url)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _writer_conn(self) -> Any:
        if self._conn is None or self._conn.closed:
            # Autocommit: a batch that is one statement is its own transaction (one round
            # trip, no BEGIN/COMMIT); longer batches open one explicitly (see _execute_batch).
            self._conn = psycopg.connect(self._dsn, autocommit=True, **self._connect_args)
        return self._conn

    def _migrate(self) -> None:
        conn = self._writer_conn()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            row = cur.fetchone()
            migrate(
                int(row[0]) if row else 0, cur.execute, "DOUBLE PRECISION", "BIGSERIAL PRIMARY KEY", _safe(self._dsn)
            )
            cur.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(UNKEYED_VERSION),),  # PostgreSQL stores are never keyed
            )

    def _execute_batch(self, statements: list[Statement]) -> None:
        conn = self._writer_conn()
        ops = _plan(statements)
        try:
            if len(ops) == 1 and len(ops[0][1]) == 1:
                # The usual batch (node runs, state, events, the batch id: one statement):
                # atomic on its own, one round trip.
                if self._cursor is None or self._cursor.connection is not conn:
                    self._cursor = conn.cursor()
                self._cursor.execute(ops[0][0], ops[0][1][0])
                return
            # Pipeline mode sends the whole batch without waiting for each statement's reply:
            # one network round trip per commit instead of one per statement.
            with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                for sql, rows in ops:
                    if len(rows) == 1:
                        cur.execute(sql, rows[0])
                    else:
                        cur.executemany(sql, rows)
        except psycopg.OperationalError:
            conn.close()  # reconnect on the retry; the server rolled the transaction back
            raise

    def _committed(self, batch_id: str) -> bool:
        # On the writer's own (new) connection: the pool may be refilling after the same fault.
        conn = self._writer_conn()
        try:
            found = conn.execute("SELECT 1 FROM write_batches WHERE id = %s", (batch_id,)).fetchone()
            conn.rollback()
        except psycopg.OperationalError:
            conn.close()
            raise
        return found is not None

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        with self._pool.connection() as conn, conn.cursor() as cur:
            yield cur

    def _retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, (psycopg.OperationalError, psycopg.errors.SerializationFailure))

    def _fix_for(self, exc: BaseException) -> str:
        if isinstance(exc, psycopg.OperationalError):
            return "The connection to the server kept failing: check that PostgreSQL is running and reachable, then run again."
        if isinstance(exc, psycopg.errors.DiskFull):
            return "The database server's disk is full: free some space (or prune old jobs), then run again."
        return "Check that the database is an AetherFlow store this user may write to."

    def close(self) -> None:
        super().close()
        if self._conn is not None:
            self._conn.close()
        self._pool.close()


# -- one statement per batch ----------------------------------------------------------------------
#
# A batch is many callers' statements, mostly the same few INSERTs (a node run, its state
# writes, its events, the batch id). Consecutive plain INSERTs are folded into one
# statement: each table's rows travel as one JSON parameter, expanded by the server
# (json_populate_recordset, in order: serial ids keep the callers' order), and the tables
# are written by data-modifying CTEs of a single statement. Any other statement (UPDATE,
# DELETE, INSERT ... SELECT, a snapshot that reads state_writes) is a barrier: it runs on
# its own, after everything before it and before everything after it, as before.

_INSERT = re.compile(r"INSERT INTO (\w+) \(([\w, ]+)\) VALUES \(\?(?:, \?)*\)( ON CONFLICT \(id\) DO NOTHING)?")
_DROP_BATCH_ID = "DELETE FROM write_batches WHERE id = ?"  # touches only a settled, older batch: commutes with the rest


class _Shape:
    """A plain INSERT that rows of several statements can share: its table, columns and folded form."""

    __slots__ = ("arrays", "columns", "conflict", "names", "row", "sql", "table", "values_sql")

    def __init__(self, table: str, columns: str, conflict: str) -> None:
        self.table = table
        self.columns = columns
        self.names = [c.strip() for c in columns.split(",")]
        # {i}: where its rows are in the batch's JSON document (see _folded_sql): each row
        # a JSON array, each value cast to its column's type.
        types = _column_types().get(table, {})
        self.arrays = all(name in types for name in self.names)
        if self.arrays:
            values = ", ".join(f"(r->>{k})::{types[name]}" for k, name in enumerate(self.names))
            self.sql = (
                f"INSERT INTO {table} ({columns}) SELECT {values} FROM d, jsonb_array_elements(d.j -> {{i}}) WITH ORDINALITY AS e(r, o) "
                f"ORDER BY o{conflict}"
            )
        else:  # a column the schema does not say: rows as objects, typed by the table
            self.sql = (
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM d, jsonb_populate_recordset(NULL::{table}, d.j -> {{i}}) "
                f"WITH ORDINALITY ORDER BY ordinality{conflict}"
            )
        self.conflict = conflict
        self.row = f"({', '.join(['%s'] * len(self.names))})"
        self.values_sql = f"INSERT INTO {table} ({columns}) VALUES {self.row}{conflict}"

    def values(self, count: int) -> str:
        """The INSERT of ``count`` rows as parameters (small batches: no JSON to parse, no sort)."""
        return f"INSERT INTO {self.table} ({self.columns}) VALUES {', '.join([self.row] * count)}{self.conflict}"


_SMALL = 8  # rows in a fold up to which they travel as parameters (about one node run); above, as one jsonb document
_shapes: dict[str, _Shape | None] = {}
_COLUMN = re.compile(r"(\w+) ((?:DOUBLE PRECISION|TEXT|INTEGER|BIGINT|BIGSERIAL))\b")
_TYPES: dict[str, dict[str, str]] = {}


def _column_types() -> dict[str, dict[str, str]]:
    """Each table's column types, as the migrations create them on PostgreSQL."""
    if not _TYPES:
        for _, steps in migrations("DOUBLE PRECISION", "BIGSERIAL PRIMARY KEY"):
            for step in steps:
                created = re.match(r"CREATE TABLE (\w+) \((.*)\)$", step)
                added = re.match(r"ALTER TABLE (\w+) ADD COLUMN (.*)$", step)
                m = created or added
                if m:
                    columns = _TYPES.setdefault(m.group(1), {})
                    for name, kind in _COLUMN.findall(m.group(2)):
                        columns[name] = "BIGINT" if kind == "BIGSERIAL" else kind
    return _TYPES


_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_folded: dict[tuple[Any, ...], str] = {}  # the statement for a sequence of shapes (and a dropped batch id)


def _shape(sql: str) -> _Shape | None:
    try:
        return _shapes[sql]
    except KeyError:
        m = _INSERT.fullmatch(sql)
        shape = _Shape(m.group(1), m.group(2), m.group(3) or "") if m else None
        if len(_shapes) < 1000:
            _shapes[sql] = shape
        return shape


def _folded_sql(key: tuple[Any, ...]) -> str:
    """One statement writing every group in ``key``: ``(shape, rows or None)``, then ``(None, ids)`` to drop.

    With row counts (a small batch) rows are parameters, so each batch shape is its own
    prepared statement; without (a large one) the one parameter is a JSON array, the rows
    of each shape in turn, then the batch ids to drop.
    """
    sql = _folded.get(key)
    if sql is None:
        parts, small = [], key[0][1] is not None
        for i, (shape, count) in enumerate(key):
            if shape is None:  # = ANY(ARRAY(...)): an index lookup per id (IN (SELECT ...) would scan the table)
                where = (
                    ("= %s" if count == 1 else "= ANY(%s)")
                    if small
                    else f"= ANY(ARRAY(SELECT jsonb_array_elements_text(d.j -> {i}) FROM d))"
                )
                parts.append(f"DELETE FROM write_batches WHERE id {where}")
            else:
                parts.append(shape.values(count) if small else shape.sql.format(i=i))
        ctes = [] if small else ["d AS (SELECT %s::jsonb AS j)"]
        ctes += [f"w{i} AS ({p})" for i, p in enumerate(parts[:-1])]
        sql = (f"WITH {', '.join(ctes)} " if ctes else "") + parts[-1]
        if len(_folded) < 1000:
            _folded[key] = sql
    return sql


_small_plans: dict[tuple[Any, ...], str] = {}  # a small batch's statements and row counts -> its one statement


def _plan(statements: list[Statement]) -> list[tuple[str, list[Any]]]:
    """The batch as few statements as keep its meaning: ``[(sql with %s, [params, ...]), ...]``."""
    # A lone node run, the usual batch of a chain: its statement is known from its shape,
    # and its parameters are its rows' values in order.
    signature = tuple((sql, len(rows)) for sql, rows in statements)
    sql = _small_plans.get(signature)
    if sql is not None:
        return [(sql, [[v for _, rows in statements for row in rows for v in row]])]
    ops = _fold_batch(statements)
    if len(_small_plans) < 1000 and _is_small(statements):
        _small_plans[signature] = ops[0][0]
    return ops


def _is_small(statements: list[Statement]) -> bool:
    """Whether a batch folds into one statement whose parameters are its rows in order."""
    tables = set()
    for i, (sql, rows) in enumerate(statements):
        if sql == _DROP_BATCH_ID:
            if i != len(statements) - 1 or len(rows) != 1:
                return False
            continue
        shape = _shape(sql)
        if shape is None or shape.table in tables or not rows:
            return False
        tables.add(shape.table)
    return 0 < sum(len(rows) for sql, rows in statements if sql != _DROP_BATCH_ID) <= _SMALL


def _fold_batch(statements: list[Statement]) -> list[tuple[str, list[Any]]]:
    ops: list[tuple[str, list[Any]]] = []
    groups: dict[str, tuple[_Shape, list[Any]]] = {}  # table -> its shape, rows
    dropped: list[Any] = []

    def fold() -> None:
        if not groups and not dropped:
            return
        if sum(len(rows) for _, rows in groups.values()) <= _SMALL:
            key: tuple[Any, ...] = tuple((shape, len(rows)) for shape, rows in groups.values())
            params: list[Any] = [v for _, rows in groups.values() for row in rows for v in row]
            if dropped:
                key += ((None, len(dropped)),)
                params.append(dropped[0][0] if len(dropped) == 1 else [row[0] for row in dropped])
            ops.append((_folded_sql(key), [params]))
            groups.clear()
            dropped.clear()
            return
        key = tuple((shape, None) for shape, _ in groups.values())
        try:
            doc: list[Any] = [
                rows if shape.arrays else [dict(zip(shape.names, row, strict=True)) for row in rows]
                for shape, rows in groups.values()
            ]
            if dropped:
                key += ((None, None),)
                doc.append([row[0] for row in dropped])
            param = _encode(doc)
        except (TypeError, ValueError):  # a value JSON cannot carry as it is (NaN, bytes): as it was
            ops.extend((shape.values_sql, rows) for shape, rows in groups.values())
            if dropped:
                ops.append((_DROP_BATCH_ID.replace("?", "%s"), dropped[:]))
        else:
            ops.append((_folded_sql(key), [(param,)]))
        groups.clear()
        dropped.clear()

    for sql, rows in statements:
        if not rows:
            continue
        if sql == _DROP_BATCH_ID:
            dropped.extend(rows)
            continue
        shape = _shape(sql)
        if shape is not None:
            group = groups.get(shape.table)
            if group is None:
                groups[shape.table] = (shape, list(rows))
                continue
            if group[0] is shape:
                group[1].extend(rows)
                continue
        fold()  # a barrier, or the same table in another shape: what came before goes first
        if shape is not None:
            groups[shape.table] = (shape, list(rows))
        else:
            ops.append((sql.replace("?", "%s"), rows))
    fold()
    return ops


def _safe_text(exc: BaseException, url: str) -> str:
    """An error's text without the password that libpq may quote from the URL."""
    text = " ".join(str(exc).split())
    _, _, rest = url.partition("://")
    creds = rest.rpartition("@")[0]
    if ":" in creds:
        text = text.replace(creds.split(":", 1)[1], "***")
    return text


def _safe(url: str) -> str:
    """The URL without its password, for messages and records."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}@{host}"
    return url
