"""BLAS caps: N worker threads must not each start N BLAS threads.

threadpoolctl limits are process-wide, so they are applied once, by the first worker that
asks, and restored when the last such worker closes.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_users = 0
_limiter: Any = None


def acquire(limit: int) -> None:
    """Cap BLAS pools at ``limit`` threads (first caller applies it)."""
    global _users, _limiter
    with _lock:
        _users += 1
        if _users == 1:
            from threadpoolctl import threadpool_limits

            _limiter = threadpool_limits(limits=limit, user_api="blas")


def release() -> None:
    """Undo one `acquire`; the last one restores the original limits."""
    global _users, _limiter
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and _limiter is not None:
            _limiter.restore_original_limits()
            _limiter = None
