"""Group commit: one writer thread turns everything queued meanwhile into one transaction.

With ``durability="sync"`` the caller waits until its batch is committed (so a commit is
on disk before the next node starts); with ``"async"`` it returns at once and the batch is
committed in the background. Either way many threads finishing nodes at the same moment
share one transaction, and only this thread ever writes: no "database is locked" from
our own threads, and a second process is waited for (busy timeout) and retried.

Every caller learns the outcome of its own item. When the database refuses a batch
because of one item (a value it cannot hold, a constraint), the batch is committed again
item by item, so only that item's caller hears the error and the others' records land.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..errors import StoreError

log = logging.getLogger("aetherflow.store")

T = TypeVar("T")  # one queued write, as the store defines it


class _Entry(Generic[T]):
    """One submitted item and, once its batch is over, its outcome."""

    __slots__ = ("done", "error", "item")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.error: BaseException | None = None


# The outcome of an item whose commit was cut short (KeyboardInterrupt, SystemExit in the
# committing thread): it may or may not be in the store, so its caller is not told it is.
_INTERRUPTED = StoreError("The write was interrupted before its commit finished; it may not be in the store. Check the job, then run it again if needed.")


class BatchWriter(Generic[T]):
    """Commits queued items in batches: on the callers' threads (sync) or a background thread (async).

    ``transact(items)`` writes items in one transaction or raises; ``isolate(error)`` says
    whether a failed batch is worth committing again item by item (the database refused
    a record), rather than failing every item at once (the database is unreachable).
    """

    def __init__(
        self,
        name: str,
        transact: Callable[[list[T]], None],
        *,
        sync: bool,
        interval: float = 0.005,
        isolate: Callable[[BaseException], bool] = lambda _error: True,
    ) -> None:
        self.sync = sync
        self.interval = interval
        self._transact = transact
        self._isolate = isolate
        self._pending: list[_Entry[T]] = []
        self._cond = threading.Condition()
        self._committing = threading.Lock()  # one committer at a time, whoever it is
        self._closed = False
        self._thread: threading.Thread | None = None
        if not sync:
            self._thread = threading.Thread(target=self._run, name=f"aetherflow-writer-{name}", daemon=True)
            self._thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item``; in sync mode, return once it is committed (or raise its own error)."""
        entry = _Entry(item)
        with self._cond:
            if self._closed:
                raise StoreError("The store is closed: it takes no more writes. Open it again (open_store(url)) to write.")
            self._pending.append(entry)
            if not self.sync:
                if len(self._pending) >= 1000:
                    self._cond.notify_all()  # bound what waits in memory
                return
        self._wait_for(entry)
        if entry.error is not None:
            # A fresh exception per caller: several threads may be raising this outcome.
            raise StoreError(str(entry.error)) from entry.error

    def flush(self) -> None:
        """Wait until everything queued so far is committed (a batch in flight included)."""
        with self._committing:
            self._commit_pending()

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _wait_for(self, entry: _Entry[T]) -> None:
        # Leader-based group commit: the thread that gets the lock commits everything
        # pending, including what others queued while the previous batch was committing.
        while not entry.done:
            with self._committing:
                if not entry.done:
                    self._commit_pending()

    def _commit_pending(self) -> None:
        with self._cond:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
        for entry in batch:  # until its transaction says otherwise: never "committed" by default
            entry.error = _INTERRUPTED
        try:
            self._commit(batch)
        finally:
            for entry in batch:
                entry.done = True

    def _commit(self, batch: list[_Entry[T]]) -> None:
        error = self._attempt(batch)
        if error is None:
            for entry in batch:
                entry.error = None
            return
        if len(batch) > 1 and self._isolate(error):
            for entry in batch:  # find the item the database refuses; the rest commit
                entry.error = self._attempt([entry])
        else:
            for entry in batch:
                entry.error = error
        failed = sum(entry.error is not None for entry in batch)
        if failed and not self.sync:
            log.error("Background write of %d of %d records failed: %s", failed, len(batch), error, exc_info=error)

    def _attempt(self, entries: list[_Entry[T]]) -> BaseException | None:
        try:
            self._transact([entry.item for entry in entries])
        except Exception as exc:  # noqa: BLE001 - handed to the callers waiting on these items
            return exc
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed and not self._pending:
                    return
                self._cond.wait(self.interval)
            with self._committing:
                self._commit_pending()


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
