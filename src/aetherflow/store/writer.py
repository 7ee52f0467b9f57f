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
from _thread import allocate_lock as _allocate_lock
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..errors import StoreError

log = logging.getLogger("aetherflow.store")

T = TypeVar("T")  # one queued write, as the store defines it


class _Entry(Generic[T]):
    """One submitted item and, once its batch is over, its outcome.

    A sync caller sleeps on its own ``wake`` lock (held from the start), released once,
    under the writer's mutex, when its batch is over or when it is handed the lead: a
    batch wakes exactly its own callers, never everyone waiting.
    """

    __slots__ = ("done", "error", "gone", "item", "lead", "signalled", "wake")

    def __init__(self, item: T, sync: bool) -> None:
        self.item = item
        self.done = False
        self.error: BaseException | None = None
        self.lead = False  # this caller commits the next batch
        self.gone = False  # its caller stopped waiting (Ctrl-C): never hand it the lead
        self.signalled = False
        if sync:
            self.wake = _allocate_lock()
            self.wake.acquire()


# The outcome of an item whose commit was cut short (KeyboardInterrupt, SystemExit in the
# committing thread): it may or may not be in the store, so its caller is not told it is.
_INTERRUPTED = StoreError(
    "The write was interrupted before its commit finished; it may not be in the store. Check the job, then run it again if needed."
)


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
        max_wait: float = 0.0,
        isolate: Callable[[BaseException], bool] = lambda _error: True,
    ) -> None:
        self.sync = sync
        self.interval = interval
        self.max_wait = max_wait  # the longest a leader waits for company (see _gather)
        self._transact = transact
        self._isolate = isolate
        self._pending: list[_Entry[T]] = []
        self._cond = threading.Condition()
        self._committing = threading.Lock()  # one committer at a time, whoever it is
        self._closed = False
        # Observability: batches committed (transactions attempted) and items in them, so
        # batch size = items / batches. Written only by the committer (under _committing).
        self.batches = 0
        self.items = 0
        self._leading = False  # a sync caller is committing (or about to) for everyone queued
        self._leader: _Entry[T] | None = None  # ... the one holding the lead
        self._gathering = False  # ... and is waiting a moment for more callers
        self._last_size = 0
        self._commit_time = 0.0  # moving average, seconds
        self._thread: threading.Thread | None = None
        if not sync:
            self._thread = threading.Thread(target=self._run, name=f"aetherflow-writer-{name}", daemon=True)
            self._thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item``; in sync mode, return once it is committed (or raise its own error)."""
        entry = _Entry(item, self.sync)
        with self._cond:
            if self._closed:
                raise StoreError(
                    "The store is closed: it takes no more writes. Open it again (open_store(url)) to write."
                )
            self._pending.append(entry)
            if not self.sync:
                if len(self._pending) >= 1000:
                    self._cond.notify_all()  # bound what waits in memory
                return
            if self._gathering:
                self._cond.notify()  # the leader is waiting a moment for company: here is some
            if not self._leading:  # nobody is committing: this caller does, for everyone queued
                self._leading = entry.lead = True
                self._leader = entry
        # Group commit: while a leader commits, the others queue; when it is done it wakes
        # its batch's callers and hands the lead to the first caller still queued, whose
        # batch is everything queued meanwhile.
        try:
            while True:
                if entry.lead:
                    entry.lead = False
                    self._lead()
                with self._cond:
                    if entry.done:
                        break
                    if entry.lead:
                        continue
                    entry.signalled = False
                entry.wake.acquire()
        except BaseException:
            # Interrupted (Ctrl-C in the main thread) while waiting or about to lead: the
            # item stays queued for the next leader, as any item whose caller left, and the
            # lead must not stay with a caller that is gone.
            with self._cond:
                entry.gone = True
                if self._leader is entry:
                    self._hand_off()
            raise
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

    def _lead(self) -> None:
        try:
            with self._committing:
                self._gather()
                self._commit_pending()
        finally:
            with self._cond:
                self._hand_off()

    def _hand_off(self) -> None:
        """Give the lead to the first caller still queued and waiting, or give it up (under the mutex)."""
        for nxt in self._pending:
            if not nxt.gone:
                nxt.lead = True
                self._leader = nxt
                self._signal(nxt)
                return
        self._leading = False
        self._leader = None

    @staticmethod
    def _signal(entry: _Entry[T]) -> None:
        """Wake a sync caller (under the writer's mutex; at most once per sleep)."""
        if not entry.signalled:
            entry.signalled = True
            entry.wake.release()

    def _gather(self) -> None:
        """Wait a moment for callers known to be on their way, so they share this transaction.

        Only when the last batch was shared (others are committing too) and fewer have
        queued than it held; never longer than a fraction of what a commit takes, so a
        lone caller never waits and a busy writer gives up little latency for larger batches.
        """
        if self.max_wait <= 0 or self._last_size < 2:
            return
        with self._cond:
            want = self._last_size
            if len(self._pending) >= want:
                return
            deadline = time.perf_counter() + min(self.max_wait, self._commit_time * 0.5)
            self._gathering = True
            try:
                while len(self._pending) < want:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            finally:
                self._gathering = False

    def _commit_pending(self) -> None:
        with self._cond:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
        self.batches += 1
        self.items += len(batch)
        self._last_size = len(batch)
        for entry in batch:  # until its transaction says otherwise: never "committed" by default
            entry.error = _INTERRUPTED
        started = time.perf_counter()
        try:
            self._commit(batch)
        finally:
            self._commit_time = 0.8 * self._commit_time + 0.2 * (time.perf_counter() - started)
            with self._cond:
                for entry in batch:
                    entry.done = True
                    if self.sync:
                        self._signal(entry)

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


def retry(
    what: str,
    fn: Callable[[], Any],
    retryable: Callable[[BaseException], bool],
    *,
    attempts: int = 8,
    first_delay: float = 0.05,
) -> Any:
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
