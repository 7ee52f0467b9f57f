"""Lifetimes: the ordered `Scope` enum and `ScopeCache`, which owns instances and their teardown.

A cache creates each instance once (per key, even when threads race), remembers how to
tear it down (a generator's code after ``yield``, or the provider's ``teardown=``), and
tears everything down exactly once, newest first, logging failures without stopping.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Collection
from enum import IntEnum
from typing import Any

log = logging.getLogger("aetherflow.scopes")


class Scope(IntEnum):
    """How long one instance lives; a larger value lives shorter."""

    PROCESS = 0  # Singleton: one per context instance
    WORKER = 1  # WorkerScoped
    THREAD = 2  # ThreadLocalSingleton: one per worker thread
    JOB = 3  # JobScoped
    NODE = 4  # NodeScoped: one per (job, node), the "routine" scope
    INJECTION = 5  # Factory: a new one every time


Creator = Callable[[], Any]
Wrapper = Callable[[Any], Any]


class ScopeCache:
    """Instances of one scope (one worker, one thread or one job), with their teardowns."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._entries: dict[Any, tuple[Any, Any]] = {}
        self._creating: dict[Any, threading.RLock] = {}
        self._teardowns: list[tuple[str, Callable[[], Any]]] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(
        self, key: Any, name: str, create: Creator, teardown: Callable[[Any], Any] | None, wrap: Wrapper | None
    ) -> tuple[Any, Any]:
        """``(instance, handed_out)`` for ``key``, creating it on first use."""
        entry = self._entries.get(key)
        if entry is not None:
            return entry
        with self._lock:
            lock = self._creating.setdefault(key, threading.RLock())
        with lock:  # one lock per key: unrelated providers never wait on each other
            entry = self._entries.get(key)
            if entry is None:
                entry = self._create(key, name, create, teardown, wrap)
        return entry

    def _create(
        self, key: Any, name: str, create: Creator, teardown: Callable[[Any], Any] | None, wrap: Wrapper | None
    ) -> tuple[Any, Any]:
        if self._closed:
            raise RuntimeError(f"{self.label} has ended; provider '{name}' cannot be created in it any more.")
        made = create()
        if inspect.isgenerator(made):
            gen = made
            instance = next(gen)
            self._add_teardown(name, lambda: _finish_generator(gen, name))
        else:
            instance = made
            if teardown is not None:
                self._add_teardown(name, lambda: teardown(instance))
        entry = (instance, wrap(instance) if wrap is not None else instance)
        self._entries[key] = entry
        return entry

    def _add_teardown(self, name: str, fn: Callable[[], Any]) -> None:
        with self._lock:
            self._teardowns.append((name, fn))

    def close(self) -> list[BaseException]:
        """Tear down every instance, newest first, once; returns the failures (also logged)."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            teardowns, self._teardowns = self._teardowns, []
            self._entries.clear()
        failures: list[BaseException] = []
        for name, fn in reversed(teardowns):
            try:
                fn()
            except Exception as exc:
                log.error("Teardown of '%s' in %s failed", name, self.label, exc_info=True)
                failures.append(exc)
        return failures


def _finish_generator(gen: Any, name: str) -> None:
    try:
        next(gen)
    except StopIteration:
        return
    raise RuntimeError(f"the generator of provider '{name}' yielded twice; a scoped generator must yield exactly once.")


_creating = threading.Lock()
_ENDED = ScopeCache("a job that has ended")
_ENDED.close()


class ThreadCaches:
    """The thread scope of one worker: a `ScopeCache` per thread that runs its nodes.

    The ``owned`` threads close their own (`close_current`) as they stop, on the thread
    that made the instances. The caches of other threads (an event loop, threads calling
    `Worker.run`) are closed by `close_others`, or as soon as a new thread finds their
    thread ended: a thread per request must not pile instances up until the end.
    """

    def __init__(self, owned: Collection[threading.Thread] = ()) -> None:
        self._local = threading.local()
        self._owned = owned
        self._others: dict[threading.Thread, ScopeCache] = {}
        self._lock = threading.Lock()

    def get(self) -> ScopeCache:
        """This thread's cache."""
        cache: ScopeCache | None = getattr(self._local, "cache", None)
        if cache is None:
            thread = threading.current_thread()
            cache = self._local.cache = ScopeCache(f"thread {thread.name}")
            if thread not in self._owned:
                self._keep(thread, cache)
        return cache

    def close_current(self) -> None:
        cache: ScopeCache | None = getattr(self._local, "cache", None)
        if cache is not None:
            cache.close()

    def close_others(self) -> None:
        with self._lock:
            caches, self._others = list(self._others.values()), {}
        for cache in caches:
            cache.close()

    def _keep(self, thread: threading.Thread, cache: ScopeCache) -> None:
        with self._lock:
            ended = [t for t in self._others if not t.is_alive()]
            gone = [self._others.pop(t) for t in ended]
            self._others[thread] = cache
        for old in gone:
            old.close()


class JobScopes:
    """The caches one job's node calls resolve scoped providers from."""

    __slots__ = ("_closing", "_holds", "_job", "job_id", "thread_cache", "worker")

    def __init__(self, worker: ScopeCache, job_id: str, thread_cache: Callable[[], ScopeCache]) -> None:
        self.worker = worker
        self.job_id = job_id
        self._job: ScopeCache | None = None  # created on first use: most jobs have no job scope
        self.thread_cache = thread_cache
        self._holds = 0  # attempts abandoned at their timeout whose threads still run
        self._closing = False

    @property
    def job(self) -> ScopeCache:
        cache = self._job
        if cache is None:
            with _creating:  # rare: the first job- or node-scoped provider of this job
                if self._job is None:
                    self._job = ScopeCache(f"job {self.job_id}")
                cache = self._job
        return cache

    def close(self) -> list[BaseException]:
        """End the job scope: tear down its job- and node-scoped instances.

        While an abandoned attempt's thread still runs, the teardown waits for it: the
        last `hold` released closes the scope, on that thread.
        """
        if self._holds:  # no lock on the usual path: holds are taken before the job can end
            with _creating:
                if self._holds:
                    self._closing = True
                    return []
        if self._job is None:
            # No lock: the job has ended, so no node of it can be creating its cache now.
            self._job = _ENDED  # refuses anything created after the end
            return []
        return self._job.close()

    def hold(self) -> Callable[[], None]:
        """Keep the job scope open until the returned ``release`` is called (once)."""
        with _creating:
            self._holds += 1
        released = False

        def release() -> None:
            nonlocal released
            with _creating:
                if released:
                    return
                released = True
                self._holds -= 1
                closing = self._closing and not self._holds
            if closing:
                self.close()

        return release

    def instance(self, provider: Any, ex: Any, create: Creator) -> tuple[Any, Any]:
        scope = provider.scope
        key: Any = provider
        if scope is Scope.WORKER:
            cache = self.worker
        elif scope is Scope.JOB:
            cache = self.job
        elif scope is Scope.NODE:
            cache, key = self.job, (provider, ex.node)
        else:
            cache = self.thread_cache()
        wrap = provider._wrap if provider.guard else None
        return cache.get(key, repr(provider.provides), create, provider.teardown, wrap)
