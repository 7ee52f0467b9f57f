"""BLAS caps: N worker threads must not each start N BLAS threads.

threadpoolctl limits are process-wide, so they are shared by every worker: the first one
applies them, a later one re-applies them if a BLAS library was loaded meanwhile (numpy
imported after the first worker started), and the last one to close restores the
original limits.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_users = 0
_limiters: list[Any] = []


def acquire(limit: int) -> None:
    """Cap BLAS pools at ``limit`` threads for as long as this user holds it."""
    global _users
    from threadpoolctl import threadpool_info, threadpool_limits

    with _lock:
        _users += 1
        over = [p for p in threadpool_info() if p.get("user_api") == "blas" and p.get("num_threads", 0) > limit]
        if _users == 1 or over:
            _limiters.append(threadpool_limits(limits=limit, user_api="blas"))


def release() -> None:
    """Undo one `acquire`; the last one restores the original limits."""
    global _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0:
            while _limiters:
                _limiters.pop().restore_original_limits()
