"""Group commit: one writer thread turns everything queued meanwhile into one transaction.

With ``durability="sync"`` the caller waits until its batch is committed (so a commit is
on disk before the next node starts); with ``"async"`` it returns at once and the batch is
committed in the background. Either way many threads finishing nodes at the same moment
share one transaction, and only this thread ever writes: no "database is locked" from
our own threads, and a second process is waited for (busy timeout) and retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger("aetherflow.store")

T = TypeVar("T")  # one queued write, as the store defines it


class BatchWriter(Generic[T]):
    """Commits queued items in batches: on the callers' threads (sync) or a background thread (async)."""

    def __init__(self, name: str, transact: Callable[[list[T]], None], *, sync: bool, interval: float = 0.005) -> None:
        self.sync = sync
        self.interval = interval
        self._transact = transact
        self._pending: list[T] = []
        self._batch_no = 0  # number of the batch now being collected
        self._done_no = 0  # batches numbered below this are committed (or failed)
        self._errors: dict[int, BaseException] = {}
        self._cond = threading.Condition()
        self._committing = threading.Lock()  # one committer at a time, whoever it is
        self._closed = False
        self._thread: threading.Thread | None = None
        if not sync:
            self._thread = threading.Thread(target=self._run, name=f"aetherflow-writer-{name}", daemon=True)
            self._thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item``; in sync mode, return once it is committed (or raise its error)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the store is closed")
            self._pending.append(item)
            ticket = self._batch_no
            if not self.sync:
                if len(self._pending) >= 1000:
                    self._cond.notify_all()  # bound what waits in memory
                return
        self._commit_through(ticket)
        with self._cond:
            error = self._errors.pop(ticket, None)
        if error is not None:
            raise error

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        with self._cond:
            ticket = self._batch_no if self._pending else self._batch_no - 1
        self._commit_through(ticket)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _commit_through(self, ticket: int) -> None:
        # Leader-based group commit: the thread that gets the lock commits everything
        # pending, including what others queued while the previous batch was committing.
        while True:
            with self._cond:
                if self._done_no > ticket:
                    return
            with self._committing:
                self._commit_pending()

    def _commit_pending(self) -> None:
        with self._cond:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            number = self._batch_no
            self._batch_no += 1
        error = self._commit(batch)
        with self._cond:
            if error is not None and self.sync:
                self._errors[number] = error
            self._done_no = number + 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed and not self._pending:
                    return
                self._cond.wait(self.interval)
            with self._committing:
                self._commit_pending()

    def _commit(self, batch: list[T]) -> BaseException | None:
        try:
            self._transact(batch)
            return None
        except Exception as exc:
            if not self.sync:
                log.error("Background write of %d records failed", len(batch), exc_info=True)
            return exc


def retry(what: str, fn: Callable[[], Any], retryable: Callable[[BaseException], bool], *, attempts: int = 8, first_delay: float = 0.05) -> Any:
    """Call ``fn``, retrying with backoff while ``retryable(error)`` (a lock, a lost connection)."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not retryable(exc):
                raise
            log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    return None
