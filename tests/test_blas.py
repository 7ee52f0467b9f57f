"""BLAS thread caps held for a worker's lifetime (blas.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLAS_CHECK = """
import numpy  # noqa: F401 - loads the BLAS library before the worker starts
from threadpoolctl import threadpool_info
from aetherflow import Worker

def blas():
    return [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]

before = blas()
with Worker(threads=4):
    inside = blas()
after = blas()
with Worker(threads=4, blas_threads=None):
    opted_out = blas()
with Worker(threads=1):
    single = blas()
print(before, inside, after, opted_out, single)
"""


def test_blas_threads_capped_for_worker_lifetime_and_restored() -> None:
    """Process-wide limits: checked in a fresh interpreter, where no other worker holds them."""

    pytest.importorskip("numpy")
    out = subprocess.run([sys.executable, "-c", BLAS_CHECK], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, inside, after, opted_out, single = (eval(part) for part in out.stdout.replace("] [", "]|[").split("|"))
    if not before:
        pytest.skip("numpy has no BLAS pool to limit here")
    assert set(inside) == {1}
    assert after == before == opted_out == single
