"""Logging and event hooks as docs/observability.md documents them, and `aetherflow run --log-level`."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aetherflow import NodeError, Worker, node

FLOWS = """
from aetherflow import node

@node
def load(n: int) -> list[int]:
    return list(range(n))

@node
def total(load: list[int]) -> int:
    return sum(load)

flow = load.then(total).named("summing")
"""


def aetherflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_run_log_level_debug_shows_each_node_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    out = aetherflow(tmp_path, "run", "flows.py:flow", "--input", "n=4", "--store", "memory://", "--log-level", "debug")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "6"
    for line in (
        "Node 'load' started in job",
        "Node 'load' completed in job",
        "Node 'total' completed in job",
        "of flow 'summing' completed",
    ):
        assert line in out.stderr


def test_run_without_log_level_shows_no_debug_records(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    out = aetherflow(tmp_path, "run", "flows.py:flow", "--input", "n=4", "--store", "memory://")
    assert out.returncode == 0, out.stderr
    assert "Node 'load'" not in out.stderr


def test_run_refuses_an_unknown_log_level_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    out = aetherflow(tmp_path, "run", "flows.py:flow", "--input", "n=4", "--store", "memory://", "--log-level", "LOUD")
    assert out.returncode == 2
    assert "--log-level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in out.stderr
    assert "Traceback" not in out.stderr


def test_records_about_nodes_carry_job_id_node_and_attempt(caplog: pytest.LogCaptureFixture) -> None:
    calls = itertools.count(1)

    @node(retries=1, retry_delay=0)
    def flaky() -> str:
        if next(calls) == 1:
            raise ConnectionError("lost")
        return "ok"

    @node
    def broken() -> None:
        raise ValueError("no")

    with caplog.at_level(logging.DEBUG, logger="aetherflow"), Worker(threads=1) as w:
        flaky_job = w.submit(flaky)
        assert flaky_job.result(10) == "ok"
        broken_job = w.submit(broken)
        with pytest.raises(NodeError):
            broken_job.result(10)

    def fields(message: str) -> tuple[Any, ...]:
        (record,) = [r for r in caplog.records if message in r.getMessage()]
        return record.name, record.levelname, record.job_id, record.node, getattr(record, "attempt", "absent")  # type: ignore[attr-defined]

    assert fields("retrying in") == ("aetherflow.invoke", "WARNING", flaky_job.id, "flaky", 1)
    assert fields("Node 'flaky' completed") == ("aetherflow.worker", "DEBUG", flaky_job.id, "flaky", 2)
    assert fields("Node 'flaky' started") == ("aetherflow.worker", "DEBUG", flaky_job.id, "flaky", "absent")
    assert fields("raised ValueError: no") == ("aetherflow.worker", "WARNING", broken_job.id, "broken", 1)
    assert fields(f"Job {broken_job.id} of flow 'broken' failed") == (
        "aetherflow.worker",
        "DEBUG",
        broken_job.id,
        None,
        "absent",
    )
