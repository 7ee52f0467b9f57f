"""Calling one node: retries with backoff, retry_on, timeouts (invoke.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from aetherflow import (
    ExecutionContext,
    NodeError,
    NodeTimeoutError,
    node,
)


def test_retries_with_backoff_then_success(worker) -> None:
    attempts: list[ExecutionContext] = []

    @node(retries=3, retry_delay=0.01, backoff=2.0, retry_on=(OSError,))
    def flaky(execution) -> str:
        attempts.append(execution)
        if len(attempts) < 3:
            raise OSError("temporary")
        return "ok"

    assert flaky.run(worker=worker) == "ok"
    assert [a.attempt for a in attempts] == [1, 2, 3]


def test_retry_only_on_listed_exceptions(worker) -> None:
    calls = []

    @node(retries=3, retry_on=(OSError,))
    def wrong() -> None:
        calls.append(1)
        raise ValueError("not retryable")

    with pytest.raises(NodeError) as info:
        wrong.run(worker=worker)
    assert len(calls) == 1
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.node == "wrong" and info.value.job_id


def test_last_error_raised_after_retries_exhausted(worker) -> None:
    @node(retries=2)
    def always() -> None:
        raise OSError("down")

    with pytest.raises(NodeError, match="attempt 3.*OSError: down"):
        always.run(worker=worker)


def test_sync_timeout_abandons_attempt(worker) -> None:
    @node(timeout=0.05)
    def stuck(job_state) -> None:
        job_state.set("written", True)
        time.sleep(0.5)

    job = worker.submit(stuck)
    with pytest.raises(NodeTimeoutError, match="timeout=0.05s"):
        job.result(5)
    assert job.state == {}  # the abandoned attempt's writes are discarded


def test_async_timeout(worker) -> None:
    @node(timeout=0.05)
    async def astuck() -> None:
        await asyncio.sleep(2)

    with pytest.raises(NodeTimeoutError):
        astuck.run(worker=worker)
