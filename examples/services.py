"""Services the example flows inject, and the context the profiles in contexts/ re-scope."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from aetherflow import BaseFlowContext, providers


class Counter:
    """A plain, non-thread-safe counter: safe only behind the shared-mode guard."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int = 1) -> int:
        current = self.value
        self.value = current + n
        return self.value


class Cache:
    """A dict-backed cache that remembers which thread created it."""

    def __init__(self) -> None:
        self.owner = threading.current_thread().name
        self.data: dict[str, object] = {}

    def get(self, key: str) -> object:
        return self.data.get(key)

    def put(self, key: str, value: object) -> None:
        self.data[key] = value


class ConnectionPool:
    """Stands in for a real pool: counts open and closed connections."""

    opened = 0
    closed = 0

    def __init__(self, size: int = 4) -> None:
        self.size = size
        ConnectionPool.opened += 1

    def query(self, sql: str) -> list[tuple[str]]:
        return [(sql,)]

    def close(self) -> None:
        ConnectionPool.closed += 1


def open_pool(size: int = 4) -> Iterator[ConnectionPool]:
    pool = ConnectionPool(size)
    yield pool
    pool.close()


class AppContext(BaseFlowContext):
    """The example context: profiles in contexts/ switch these providers' scopes."""

    counter = providers.Singleton(Counter)
    cache = providers.ThreadLocalSingleton(Cache)
    pool = providers.WorkerScoped(open_pool, size=4)
    user_state = providers.ThreadLocalSingleton(dict)
