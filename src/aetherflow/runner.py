"""Running node calls on this process: the worker's threads, fed by one queue, and the event-loop thread.

Moved out of worker.py unchanged (a mixin of `Worker` for now); the next step makes it a
runner object behind a protocol, with Dask's runner beside it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from queue import SimpleQueue

    from .invoke import JobCall
    from .job import Job
    from .scopes import ThreadCaches

log = logging.getLogger("aetherflow.worker")  # the same logger as events.py's

_Task = tuple[Any, ...]


class LocalRunning:
    """The part of `Worker` that runs node calls on its threads and event loop."""

    # Provided by `Worker`.
    id: str
    _queue: SimpleQueue[Any]
    _lock: threading.Lock
    _thread_caches: ThreadCaches
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: threading.Thread | None

    if TYPE_CHECKING:  # provided by `JobDriving`

        def _execute(self, task: Any, thread: str) -> None: ...
        def _fail_task(self, task: Any, exc: BaseException) -> None: ...
        def _acall(self, task: _Task) -> Coroutine[Any, Any, None]: ...

    def _serve(self) -> None:
        get = self._queue.get
        thread = threading.current_thread().name
        while True:
            task = get()
            if task is None:
                break
            try:
                self._execute(task, thread)
            except BaseException as exc:  # a bug here must not kill the thread or hang the job
                log.critical("AetherFlow internal error while running a node", exc_info=True)
                self._fail_task(task, exc)
            task = None  # an idle thread must not keep its last job alive
        self._thread_caches.close_current()  # thread-scoped instances are torn down on their own thread

    # Whether nodes are called on this process's threads and loop; `aetherflow.dask.DaskWorker`
    # sends them to the cluster instead (`_send_node`).
    _calls_here = True

    def _send_node(self, call: JobCall, job: Job, i: int, k: int, started: float) -> None:
        raise NotImplementedError("a worker that does not call nodes here sends them elsewhere")

    def _run_async(self, task: _Task) -> None:
        loop = self._event_loop()
        asyncio.run_coroutine_threadsafe(self._acall(task), loop)

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

                    self._loop_thread = threading.Thread(target=serve, name=f"{self.id}-asyncio", daemon=True)
                    self._loop_thread.start()
                    started.wait()
                    self._loop = loop
        return self._loop
