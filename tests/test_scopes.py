"""Scopes: ordered lifetimes, create-once caches, teardown order, per-thread caches (scopes.py)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from dependency_injector import providers as di_providers

from aetherflow import BaseFlowContext, NodeTimeoutError, Worker, node, providers
from aetherflow.scopes import Scope


def test_generator_factories_are_torn_down_when_scope_ends_in_reverse_order() -> None:
    log: list[str] = []

    def resource(name: str) -> Iterator[str]:
        log.append(f"open {name}")
        yield name
        log.append(f"close {name}")

    class Res(BaseFlowContext):
        conn = providers.WorkerScoped(resource, "conn")
        tx = providers.JobScoped(resource, "tx")
        scratch = providers.NodeScoped(resource, "scratch")

    @node
    def use(conn: str, tx: str, scratch: str) -> str:
        return f"{conn}/{tx}/{scratch}"

    w = Worker(Res, threads=2)
    job = w.submit(use)
    assert job.result() == "conn/tx/scratch"
    assert log == ["open conn", "open tx", "open scratch", "close scratch", "close tx"]
    use.run(worker=w)
    assert log.count("open conn") == 1  # one per worker
    w.close()
    assert log[-1] == "close conn" and log.count("close conn") == 1


def test_failing_teardown_is_logged_and_does_not_stop_others(caplog) -> None:
    closed = []

    def bad(_: object) -> None:
        raise OSError("cannot close")

    class Res(BaseFlowContext):
        first = providers.JobScoped(list, teardown=lambda x: closed.append("first"))
        second = providers.JobScoped(dict, teardown=bad)

    @node
    def use(first: list, second: dict) -> int:
        return 1

    with Worker(Res, threads=1) as w, caplog.at_level(logging.ERROR, logger="aetherflow.scopes"):
        assert use.run(worker=w) == 1
    assert closed == ["first"]
    assert "Teardown of" in caplog.text and "OSError: cannot close" in caplog.text


def test_scope_order_compares_lifetimes() -> None:
    assert Scope.PROCESS < Scope.WORKER < Scope.THREAD < Scope.JOB < Scope.NODE
    assert providers.scope_of(di_providers.Singleton(dict)) is Scope.PROCESS
    assert providers.scope_of(providers.Factory(dict)) is Scope.INJECTION


def test_thread_local_instances_of_callers_that_ended_are_torn_down() -> None:
    """Threads calling `worker.run` work on their job, with their own thread-scoped instance;
    once such a thread has ended, its instance is torn down, not kept until the worker closes."""
    made = itertools.count(1)
    torn: list[int] = []

    class PerThread(BaseFlowContext):
        scratch = providers.ThreadLocalSingleton(lambda: [next(made)], teardown=lambda s: torn.append(s[0]))

    @node
    def which(scratch: list) -> int:
        return scratch[0]

    with Worker(PerThread, threads=1) as w:
        seen: list[int] = []
        for _ in range(5):
            caller = threading.Thread(target=lambda: seen.append(w.run(which)))
            caller.start()
            caller.join(10)
        assert seen == [1, 2, 3, 4, 5]  # one instance per calling thread
        assert torn == [1, 2, 3, 4]  # each new caller's first use closed those of callers gone
    assert torn == [1, 2, 3, 4, 5]


class Connection:
    def __init__(self) -> None:
        self.closed = False


@pytest.mark.parametrize("scoped", [providers.JobScoped, providers.NodeScoped], ids=["JobScoped", "NodeScoped"])
def test_timed_out_sync_node_keeps_its_scoped_instances_until_its_thread_returns(scoped: type) -> None:
    """Python cannot stop a thread: a sync node past its timeout runs on in the background.
    Its job- and node-scoped instances are torn down once it returns, not under its feet."""
    events: list[str] = []
    returned = threading.Event()

    class Ctx(BaseFlowContext):
        conn = scoped(
            Connection, guard=False, teardown=lambda c: (setattr(c, "closed", True), events.append("torn down"))
        )

    @node(timeout=0.1)
    def slow(conn: Connection) -> None:
        time.sleep(0.5)
        events.append("used a closed connection" if conn.closed else "used an open connection")
        returned.set()

    with Worker(Ctx, threads=1) as w:
        job = w.submit(slow)
        with pytest.raises(NodeTimeoutError):
            job.result(timeout=10)
        assert events == []  # the job has ended, its abandoned attempt still runs
        assert returned.wait(5)
        deadline = time.monotonic() + 5
        while "torn down" not in events and time.monotonic() < deadline:
            time.sleep(0.01)
    assert events == ["used an open connection", "torn down"]
