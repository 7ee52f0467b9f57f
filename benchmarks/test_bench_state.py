"""pytest-benchmark suites for scopes and state."""

from __future__ import annotations

from compare import Counter

from aetherflow.guard import GuardedProxy
from aetherflow.state import StateHandle, StateScope, StateSpace, commit


def test_guarded_call(benchmark) -> None:
    proxy = GuardedProxy(Counter())
    benchmark(proxy.add)
    assert proxy.n > 0


def test_raw_call(benchmark) -> None:
    c = Counter()
    benchmark(c.add)


def test_commit_small_writeset(benchmark) -> None:
    space = StateSpace(StateScope.JOB)

    def one() -> None:
        h = StateHandle(space)
        h.set("a", 1)
        h.set("b", 2)
        h.apply("n", lambda v: v + 1, default=0)
        commit([h], "job", "node")

    benchmark(one)
    assert space.snapshot()["n"] > 0
