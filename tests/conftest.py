from __future__ import annotations

from collections.abc import Iterator

import pytest

from aetherflow import Worker


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker(threads=4, name="test-worker")
    yield w
    w.close()
