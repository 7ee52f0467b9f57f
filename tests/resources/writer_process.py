"""Writes many jobs into a store from a second process: ``python writer_process.py URL N``."""

from __future__ import annotations

import sys

from aetherflow import Worker, node


@node
def work(i: int, job_state) -> int:
    job_state.set("i", i)
    return i * 2


if __name__ == "__main__":
    url, n = sys.argv[1], int(sys.argv[2])
    with Worker(threads=8, store=url) as w:
        jobs = [w.submit(work.named("second-process"), {"i": i}) for i in range(n)]
        assert [j.result() for j in jobs] == [i * 2 for i in range(n)]
    print("ok")
