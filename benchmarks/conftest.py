from __future__ import annotations

from collections.abc import Iterator

import pytest

from aetherflow import Worker


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker(threads=8)
    yield w
    w.close()
