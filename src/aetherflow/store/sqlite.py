"""``sqlite:///path.db``: the embedded store (the CLI's default is ``.aetherflow/runs.db``).

WAL mode (readers never block the writer), one writer thread per store with group
commit, ``BEGIN IMMEDIATE`` and a long busy timeout so a second process writing the same
file waits its turn instead of failing with "database is locked". ``synchronous=NORMAL``
keeps every commit safe from a crashed process; add ``?synchronous=full`` to the URL to
also survive a power cut (one fsync per commit).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ..errors import StoreError
from .sql import SCHEMA_VERSION, SQLStore, Statement, migrate


def sqlite_path(url: str) -> tuple[Path, dict[str, str]]:
    """``sqlite:///rel.db`` -> rel.db, ``sqlite:////abs.db`` -> /abs.db, plus URL options."""
    rest = url[len("sqlite://"):]
    if not rest.startswith("/") or rest == "/":
        raise StoreError(f"SQLite URL {url!r} has no path: use 'sqlite:///relative.db' or 'sqlite:////absolute/path.db'.")
    rest, _, query = rest[1:].partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    return Path(rest), options


class SQLiteStore(SQLStore):
    """A store in one SQLite file, safe for many threads and several processes."""

    def __init__(self, url: str, **options: Any) -> None:
        self.path, url_options = sqlite_path(url)
        self.synchronous = url_options.get("synchronous", "normal").upper()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn = self._connect()
        super().__init__(url, **options)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=60000")
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot open SQLite store at {self.path.resolve()}: {exc}.") from exc
        return conn

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            migrate(int(row[0]) if row else 0, conn.execute, "REAL", "INTEGER PRIMARY KEY AUTOINCREMENT", str(self.path))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _execute_batch(self, statements: list[Statement]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in statements:
                if len(rows) == 1:
                    conn.execute(sql, rows[0])
                else:
                    conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        yield conn.cursor()

    def _retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))

    def close(self) -> None:
        super().close()
        self._conn.close()
