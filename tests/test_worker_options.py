"""Worker options: a value that cannot work is refused at once, with a message that says why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aetherflow import AetherFlowError, Worker, node


@node
def one() -> int:
    return 1


@pytest.mark.parametrize("threads", [0, -1, -8, 2.5, "4", True], ids=repr)
def test_worker_refuses_a_thread_count_that_is_not_a_positive_int(threads: object) -> None:
    """`Worker(threads=-1)` used to hang for ever and `threads=0` silently meant the default."""
    with pytest.raises(AetherFlowError) as caught:
        Worker(threads=threads)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"Worker(threads=...) must be a positive int (the number of threads that run nodes), "
        f"found {threads!r}. Pass threads=1 or more, or leave it out for the default "
        f"(min(32, CPUs + 4))."
    )


@pytest.mark.parametrize("threads", [None, 1, 3])
def test_worker_accepts_none_or_a_positive_thread_count(threads: int | None) -> None:
    with Worker(threads=threads) as w:
        assert w.run(one) == 1
        assert w.threads >= 1 if threads is None else w.threads == threads


def test_worker_refuses_an_unknown_durability() -> None:
    with pytest.raises(AetherFlowError, match=r"durability must be 'sync' or 'async', found 'fast'"):
        Worker(durability="fast")


@pytest.mark.parametrize("lease", [0, -1.0, float("nan"), "30"], ids=repr)
def test_worker_refuses_a_lease_that_is_not_a_positive_number(lease: object) -> None:
    with pytest.raises(AetherFlowError, match=r"Worker\(lease=\.\.\.\) must be a positive number of seconds"):
        Worker(lease=lease)  # type: ignore[arg-type]


def test_cli_refuses_negative_threads_with_one_line_instead_of_hanging(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text("from aetherflow import node\n\n@node\ndef one() -> int:\n    return 1\n")
    exe = shutil.which("aetherflow", path=os.path.dirname(sys.executable)) or "aetherflow"
    result = subprocess.run(
        [exe, "run", "flows.py:one", "--threads", "-1", "--store", "memory://"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.count("error:") == 1
    assert "must be a positive int" in result.stderr
    assert "Traceback" not in result.stderr
