"""``sqlite:///path.db``: the embedded store (the CLI's default is ``.aetherflow/runs.db``).

WAL mode (readers never block the writer), one writer thread per store with group
commit, ``BEGIN IMMEDIATE`` and a long busy timeout so a second process writing the same
file waits its turn instead of failing with "database is locked". ``synchronous=NORMAL``
keeps every commit safe from a crashed process; add ``?synchronous=full`` to the URL to
also survive a power cut (one fsync per commit).

The WAL is copied into the database file (a checkpoint) by a thread of the store's own,
not by the commit that happens to fill it: a checkpoint fsyncs twice, and on a busy disk
that made every ~120th commit wait milliseconds, about half of a chain's time per step
(docs/benchmarks.md).

A store file and the folders created for it are readable by their owner only (0600 and
0700: the history holds inputs and outputs). A store that cannot be written (a read-only
mount, someone else's file) is opened read-only, so its history can still be read;
``readonly=True`` asks for that outright.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from ..errors import StoreError
from .sql import SCHEMA_VERSION, UNKEYED_VERSION, SQLStore, Statement, migrate

log = logging.getLogger("aetherflow.store")

_CHECKPOINT_EVERY = 64  # commits between two background checkpoints (~500 WAL pages of node runs)
# The WAL starts over only once all of it is copied, which a checkpoint running while
# commits go on may never see: past this many pages (~40 MB) the background checkpoint
# holds new commits back for the few pages left (RESTART), so the WAL starts over.
_WAL_PAGES_BOUND = 10_000


def sqlite_path(url: str) -> tuple[Path, dict[str, str]]:
    """``sqlite:///rel.db`` -> rel.db, ``sqlite:////abs.db`` -> /abs.db, plus URL options."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise StoreError(
            f"SQLite URL {url!r} has no path: use 'sqlite:///relative.db' or 'sqlite:////absolute/path.db'."
        )
    rest, _, query = rest[1:].partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    return Path(rest), options


class SQLiteStore(SQLStore):
    """A store in one SQLite file, safe for many threads and several processes."""

    commit_outcome_can_be_lost = False  # a locked or busy COMMIT leaves the transaction open: we roll it back
    default_group_wait = 0.0005  # 8-64 concurrent jobs: 6-7 records per transaction instead of 1-3, 10-25% more steps/s

    def __init__(self, url: str, *, readonly: bool = False, **options: Any) -> None:
        self.path, url_options = sqlite_path(url)
        self.synchronous = url_options.get("synchronous", "normal").upper()
        self.readonly = readonly or _cannot_write(self.path)
        if not self.readonly:
            _create_private(self.path)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []  # every thread's, closed with the store
        self._conn = self._connect()
        self._commits = 0
        self._checkpointer = None if self.readonly else _Checkpointer(self.path, self.synchronous)
        if self._checkpointer is not None:  # the writer's own checkpoint only if that thread cannot keep up
            self._conn.execute(f"PRAGMA wal_autocheckpoint={4 * _WAL_PAGES_BOUND}")
        super().__init__(url, **options)

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                return self._connect_readonly()
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=60000")
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise StoreError(
                f"Cannot open SQLite store at {self.path.resolve()} read-only: there is no such file. Check the path, or run a flow to create it."
            )
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            # A WAL store on a read-only mount: its -shm file cannot be created. Read the
            # file as it is (immutable); nothing can write to it there anyway.
            conn.close()
            conn = sqlite3.connect(
                uri.replace("mode=ro", "immutable=1"), uri=True, isolation_level=None, check_same_thread=False
            )
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def _open_error(self, exc: BaseException) -> StoreError:
        return StoreError(
            f"Cannot open SQLite store at {self.path.resolve()}: {type(exc).__name__}: {exc}. {self._fix_for(exc)}"
        )

    def _migrate(self) -> None:
        if self.readonly:
            self._check_readable_version()
            return
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            # Not AUTOINCREMENT: its counter lives in one more page that every commit would
            # write to the WAL (~10% of a node run's commit). A rowid is still the largest
            # plus one, so a job's records keep their order; only ids of the newest records,
            # once pruned, may be given again. Stores created before keep AUTOINCREMENT.
            # A new store's job records are keyed by job (see sql.migrations); stores
            # created before keep their layout.
            migrate(
                int(row[0]) if row else 0, conn.execute, "REAL", "INTEGER PRIMARY KEY", str(self.path), keyed=not row
            )
            self.keyed = _is_keyed(conn)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION if self.keyed else UNKEYED_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # SQLite may have rolled back already (disk full, corrupt file)
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._open_error(exc) from exc
            raise

    def _check_readable_version(self) -> None:
        try:
            has_meta = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            row = (
                self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if has_meta
                else None
            )
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        if row is None:
            raise StoreError(
                f"{self.path.resolve()} is not an AetherFlow store (no schema version in it), and it is opened read-only. Check the path."
            )
        if int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {row[0]}, newer than this AetherFlow knows ({SCHEMA_VERSION}); upgrade aetherflow."
            )
        try:
            self.keyed = _is_keyed(self._conn)
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc

    # -- writes and reads -------------------------------------------------------------------

    def _execute_batch(self, statements: list[Statement]) -> None:
        if self.readonly:
            raise StoreError(
                f"The SQLite store at {self.path.resolve()} is open read-only (the file or its folder cannot be written): it cannot record jobs. Use a writable path."
            )
        conn = self._conn
        try:
            # Inside the try: a Ctrl-C that comes while BEGIN waits for another process's
            # lock is raised as BEGIN returns, with the lock held; it must still roll back.
            conn.execute("BEGIN IMMEDIATE")
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
        self._commits += 1
        if self._commits % _CHECKPOINT_EVERY == 0 and self._checkpointer is not None:
            if self._checkpointer.broken:  # back to SQLite's own checkpoints, on commit
                self._conn.execute("PRAGMA wal_autocheckpoint=1000")
                self._checkpointer = None
            else:
                self._checkpointer.due()

    def _committed(self, batch_id: str) -> bool:
        # The writer's own connection: a batch that failed before COMMIT left nothing.
        return self._conn.execute("SELECT 1 FROM write_batches WHERE id = ?", (batch_id,)).fetchone() is not None

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._readers.append(conn)
        yield conn.cursor()

    def _retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))

    def _fix_for(self, exc: BaseException) -> str:
        text = str(exc).lower()
        if "full" in text:
            return f"The disk holding {self.path.resolve().parent} is full: free some space (or prune old jobs with store.prune(older_than=...)), then run again."
        if "readonly" in text or "read-only" in text or "read only" in text:
            return f"{self.path.resolve()} or its folder cannot be written: fix its permissions, or use a store on a writable path."
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return f"{self.path.resolve()} is damaged or is not a SQLite file: move it aside (keep a copy) and let AetherFlow create a new one, or recover it with `sqlite3 {self.path} .recover`."
        if "unable to open" in text:
            return f"Check that the folder {self.path.resolve().parent} exists and is writable."
        if isinstance(exc, UnicodeError):
            return "A text value could not be encoded; this is a bug in AetherFlow, please report it."
        return f"Check that {self.path.resolve()} is a writable AetherFlow store."

    def close(self) -> None:
        super().close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        for reader in self._readers:
            reader.close()
        self._conn.close()


class _Checkpointer:
    """Copies the WAL into the database file on its own thread and connection, when told it is due.

    A PASSIVE checkpoint waits for nobody: commits go on meanwhile (frames committed after
    it began wait for the next one); past `_WAL_PAGES_BOUND` a RESTART one follows, which
    holds commits back while it copies what is left. Its connection has the store's
    ``synchronous``, so it fsyncs as SQLite's own checkpoint would: the WAL before copying,
    the file after.
    """

    def __init__(self, path: Path, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._due = threading.Event()
        self._closing = False
        self.broken = False  # its connection could not be opened: the writer checkpoints instead
        self._thread: threading.Thread | None = None

    def due(self) -> None:
        """Ask for a checkpoint (called by the committer, one thread at a time)."""
        if self._thread is None or not self._thread.is_alive():  # first use, or a forked child
            self._thread = threading.Thread(target=self._run, name="aetherflow-checkpoint", daemon=True)
            self._thread.start()
        self._due.set()

    def close(self) -> None:
        self._closing = True
        self._due.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            # A short busy timeout: a RESTART waits that long at most for a reader still on
            # the old WAL, holding commits back meanwhile; the next one tries again.
            conn = sqlite3.connect(self._path, timeout=0.1, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        except sqlite3.Error as exc:
            log.warning("Cannot open %s to checkpoint it in the background: %s", self._path, exc)
            self.broken = True
            return
        try:
            while True:
                self._due.wait()
                if self._closing:
                    return
                self._due.clear()
                try:
                    _, pages, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if pages >= _WAL_PAGES_BOUND:
                        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                except sqlite3.Error as exc:
                    # Another process checkpointing, a full disk: the next one (or the
                    # writer's own, far past _WAL_PAGES_BOUND) copies what this one could not.
                    log.debug("Background checkpoint of %s skipped: %s", self._path, exc)
        finally:
            conn.close()


def _is_keyed(conn: sqlite3.Connection) -> bool:
    """Whether the store's job records are keyed by job (created so at schema version 6 or later)."""
    return conn.execute("SELECT 1 FROM pragma_table_info('jobs') WHERE name = 'num'").fetchone() is not None


def _cannot_write(path: Path) -> bool:
    """Whether an existing store file (or the folder a new one would go in) is read-only to us."""
    if path.exists():
        return not os.access(path, os.W_OK) or not os.access(path.parent if str(path.parent) else Path("."), os.W_OK)
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    return not os.access(folder, os.W_OK)


def _create_private(path: Path) -> None:
    """Create the store's folders (0700) and file (0600) if they are missing."""
    missing = [p for p in [path.parent, *path.parent.parents] if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    if not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StoreError(
                f"Cannot create SQLite store at {path.resolve()}: {exc}. Check that its folder is writable."
            ) from exc
