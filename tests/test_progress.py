"""Progress bars: drawn in a real terminal (a pseudo-terminal here), silent when piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

import pytest

SCRIPT = """
import time

import pytest
from aetherflow import Worker, node

@node
def nap(i: int) -> int:
    time.sleep(0.01)
    return i

with Worker(threads=4) as w:
    assert w.map(nap, [{"i": i} for i in range(60)], progress=True) == list(range(60))
print("DONE")
"""


def _in_terminal(code: str) -> str:
    """Run Python with a pseudo-terminal as stdout and stderr; return what it drew."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=secondary, stderr=secondary, env={**os.environ, "COLUMNS": "100"}
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(main, 4096)
        except OSError:  # the program ended and closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_map_draws_a_progress_bar_in_a_terminal() -> None:
    screen = _in_terminal(SCRIPT)
    assert "DONE" in screen
    assert "60/60" in screen  # rich's M-of-N column reached the end
    assert "nap" in screen


def test_map_is_quiet_when_output_is_not_a_terminal() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "DONE\n" and result.stderr == ""


HONEST = """
import time

import pytest
from aetherflow import Worker, node

@node
def work(i: int) -> int:
    time.sleep(3.0 if i == 0 else 0.02)  # the first job is the slow one
    if i == 5:
        raise ValueError("five")
    return i

with Worker(threads=4) as w:
    out = w.map(work, [{"i": i} for i in range(12)], progress=True, return_exceptions=True)
print("DONE", [type(o).__name__ if isinstance(o, Exception) else o for o in out])
"""


def test_map_progress_counts_jobs_as_they_end_with_running_and_failed_counts() -> None:
    screen = _in_terminal(HONEST)
    assert "DONE [0, 1, 2, 3, 4, 'NodeError', 6, 7, 8, 9, 10, 11]" in screen
    assert "11/12" in screen  # the 11 quick jobs counted while the slow first one still runs
    assert "1 running · 1 failed" in screen
    assert "12/12" in screen


def test_map_return_exceptions_puts_each_error_in_place() -> None:
    from aetherflow import NodeError, Worker, node

    @node
    def odd_fails(i: int) -> int:
        if i % 2:
            raise ValueError(f"odd {i}")
        return i

    with Worker(threads=2) as w:
        out = w.map(odd_fails, [{"i": i} for i in range(4)], progress=False, return_exceptions=True)
        assert out[0] == 0 and out[2] == 2
        assert isinstance(out[1], NodeError) and "odd 1" in str(out[1].__cause__)
        assert isinstance(out[3], NodeError)
        with pytest.raises(NodeError, match="odd"):
            w.map(odd_fails, [{"i": i} for i in range(4)], progress=False)


CLI_RUN = """
from aetherflow import node

@node
def items(n: int) -> list[int]:
    return list(range(n))

@node
def square(x: int) -> int:
    return x * x

@node
def total(square: list[int]) -> int:
    return sum(square)

flow = items.map(square).then(total).named("squares")
"""


def test_cli_run_counts_node_runs_and_says_so(tmp_path: os.PathLike[str]) -> None:
    from pathlib import Path

    Path(tmp_path, "flows.py").write_text(CLI_RUN)
    code = f"import os, sys; os.chdir({str(tmp_path)!r}); sys.argv = ['aetherflow', 'run', 'flows.py:flow', '-i', 'n=20']; from aetherflow.cli import main; main()"
    screen = _in_terminal(code)
    assert "22 node runs done" in screen  # items, 20 squares, total: the unit is named, no made-up total
    assert "/3" not in screen


def test_map_with_inputs_that_cannot_start_a_job() -> None:
    from aetherflow import MissingInputError, UsageError, Worker, node

    started: list[int] = []

    @node
    def slow(x: int) -> int:
        started.append(x)
        time.sleep(0.2)
        return x

    with Worker(threads=2) as w:
        out = w.map(slow, [{"x": 1}, {}, 5, {"x": 2}], progress=False, return_exceptions=True)  # type: ignore[list-item]
        assert out[0] == 1 and out[3] == 2
        assert isinstance(out[1], MissingInputError) and isinstance(out[2], UsageError)
        started.clear()
        with pytest.raises(MissingInputError):
            w.map(slow, [{"x": 10}, {}], progress=False)
        [job] = [j for j in w.store.jobs(limit=10) if j.inputs == {"x": 10}]
        time.sleep(0.3)
        assert w.store.job(job.id).status in ("cancelled", "completed")  # never left without a handle, running
