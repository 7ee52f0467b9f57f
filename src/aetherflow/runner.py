"""Runners: where a worker's node calls run. The `Runner` protocol, and `LocalRunner`.

A runner owns threads fed by one queue. The queue carries ``(driver, vertex, item)``
tasks (``item`` is -1 unless the vertex is mapped); a thread takes one and calls
``driver.step(vertex, item, thread)``, which runs that vertex and each first ready
successor after it on the same thread, so a chain pays no thread hand-off per node.

- `LocalRunner` calls nodes on its own threads (``calls_here``), and ``async def`` nodes
  on an event-loop thread it starts on first use.
- `aetherflow.dask.DaskRunner` sends node calls to a Dask cluster (``send``); its threads
  commit what comes back and continue the job.

A new runner implements `Runner` (usually by extending `LocalRunner`, whose threads do
the recording) and is passed to ``Worker(runner=...)``; see docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, Protocol

from .scopes import ThreadCaches

if TYPE_CHECKING:
    from .driver import Driver
    from .invoke import JobCall

log = logging.getLogger("aetherflow.worker")  # the same logger as events.py's


class Step(Protocol):
    """What a queued task names first: a job's `Driver`, or what a runner queues on its behalf."""

    def step(self, vertex: int, item: int, thread: str) -> None: ...

    def fail(self, vertex: int, exc: BaseException) -> None: ...


# One task on a runner's queue: (driver, vertex, item index or -1). A plain tuple: one is made per queued vertex.
Task = tuple[Step, int, int]


class Runner(Protocol):
    """Where the node calls of a worker's jobs run (see the module docstring)."""

    calls_here: bool  # whether its threads call nodes themselves; if not, `send` ships each call elsewhere
    put: Callable[[Task], None]  # queue a task for the runner's threads
    thread_caches: ThreadCaches  # the thread-scoped instances of the threads that call nodes here

    def start(self, name: str, threads: int) -> None:
        """Start ``threads`` threads named ``{name}-{n}`` (called once, by the `Worker`)."""

    def accepts(self, context: Any, flow: str) -> None:
        """Raise if ``flow``'s jobs cannot use ``context`` here (called before a job is recorded)."""

    def send(self, driver: Driver, vertex: int, item: int, started: float) -> None:
        """Call the vertex elsewhere; when it ends, queue what calls ``driver.returned(...)``."""

    def run_async(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an ``async def`` node's call (a driver's coroutine) to its end, without blocking the caller."""

    def queued(self) -> int:
        """Tasks waiting for a thread (a metric)."""

    def job_ended(self, call: JobCall) -> None:
        """Tear down the ended job's job- and node-scoped instances (before its result is handed out)."""

    def close(self) -> None:
        """Stop the threads once every job ended, and tear down thread-scoped instances."""


class LocalRunner:
    """Calls nodes on this process: its threads, fed by one `SimpleQueue`, and an event-loop thread."""

    calls_here = True

    def __init__(self) -> None:
        self._queue: SimpleQueue[Task | None] = SimpleQueue()  # tasks, or None to stop a thread
        self.put: Callable[[Task], None] = self._queue.put
        self.thread_caches = ThreadCaches()
        self._pool: list[threading.Thread] = []
        self._name = "aetherflow"
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def start(self, name: str, threads: int) -> None:
        self._name = name
        self._pool = [threading.Thread(target=self._serve, name=f"{name}-{n}", daemon=True) for n in range(threads)]
        self.thread_caches = ThreadCaches(owned=self._pool)
        for t in self._pool:
            t.start()

    def _serve(self) -> None:
        get = self._queue.get
        thread = threading.current_thread().name
        while True:
            task = get()
            if task is None:
                break
            driver, vertex, item = task  # the one place a task is taken apart
            try:
                driver.step(vertex, item, thread)
            except BaseException as exc:  # a bug here must not kill the thread or hang the job
                log.critical("AetherFlow internal error while running a node", exc_info=True)
                driver.fail(vertex, exc)
            task = driver = None  # type: ignore[assignment]  # an idle thread must not keep its last job alive
        self.thread_caches.close_current()  # thread-scoped instances are torn down on their own thread

    def accepts(self, context: Any, flow: str) -> None:
        pass  # every context works in this process

    def send(self, driver: Driver, vertex: int, item: int, started: float) -> None:
        raise NotImplementedError("a local runner calls nodes on its own threads (calls_here)")

    def run_async(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._event_loop())

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    loop = asyncio.new_event_loop()
                    started = threading.Event()

                    def serve() -> None:
                        asyncio.set_event_loop(loop)
                        loop.call_soon(started.set)
                        loop.run_forever()

                    self._loop_thread = threading.Thread(target=serve, name=f"{self._name}-asyncio", daemon=True)
                    self._loop_thread.start()
                    started.wait()
                    self._loop = loop
        return self._loop

    def queued(self) -> int:
        return self._queue.qsize()

    def job_ended(self, call: JobCall) -> None:
        call.scopes.close()

    def close(self) -> None:
        for _ in self._pool:
            self._queue.put(None)
        for t in self._pool:
            t.join()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join()
            self._loop.close()
        self.thread_caches.close_others()  # of threads that are not the runner's own (loop, callers of run)
