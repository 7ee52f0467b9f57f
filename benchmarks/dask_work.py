"""Work for the Dask comparison, importable by the Dask worker processes."""

from __future__ import annotations

from aetherflow import node


def crunch_fn(size: int) -> int:
    """Pure-Python CPU work: holds the GIL, so threads cannot run it in parallel."""
    total = 0
    for i in range(size):
        total += i * i % 7
    return total


@node
def crunch(size: int) -> int:
    return crunch_fn(size)
