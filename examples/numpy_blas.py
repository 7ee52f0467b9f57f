"""A numpy-heavy flow on 4 threads with BLAS capped at 1 thread each (threadpoolctl).

Without the cap, 4 worker threads x N BLAS threads oversubscribe the cores. The worker
applies the cap for its lifetime and restores the original limits when it closes.
"""

from __future__ import annotations

import sys

import numpy as np
from threadpoolctl import threadpool_info

from aetherflow import Worker, node


@node
def matrices(seed: int, size: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((size, size)).tolist()


@node
def power(matrices: list[list[float]]) -> float:
    m = np.asarray(matrices)
    for _ in range(3):
        m = np.tanh(m @ m.T / np.sqrt(m.shape[0]))
    return float(np.linalg.norm(m))


flow = matrices.then(power).named("blas")


def blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print("BLAS threads before:", blas_threads())
    with Worker(threads=4, blas_threads=1) as worker:
        print("BLAS threads inside the worker:", blas_threads())
        norms = worker.map(flow, [{"seed": s, "size": size} for s in range(8)])
    print("norms:", [round(n, 2) for n in norms])
    print("BLAS threads after close:", blas_threads())
