"""Every example runs (with small inputs) and prints what it claims to show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "demo.py": ([], ["result: {'lines': 3, 'words': 20", "completed"]),
    "isolated_etl.py": (["8"], ["8 batches, 400 rows"]),
    "shared_counter.py": (["16"], ["counter = 1600 (expected 1600)"]),
    "hybrid_context.py": ([], ["'user_state': 'ThreadLocalSingleton'", "highest count seen 30"]),
    "global_component_state.py": ([], ["node: debug_messages=[{'start': {'inputs': {'a': 1}}}]"]),
    "branch_loop.py": ([], ["->[end] call_times = None", "->[end] num = 40", "{'call_times': 4}"]),
    "loop_controllers.py": ([], ["trace: ['outer1', 'outer2', 'inner1', 'inner2', 'inner3']"]),
    "worker_counter.py": ([], ["{'count': 200, 'jobs': 100}"]),
    "crash_recovery.py": (
        [],
        ["recovered 1 job(s): result 100", "nodes that ran in all: ['fetch', 'enrich', 'publish']"],
    ),
    "approval.py": (
        [],
        [
            "suspended: payment of 120.0 needs a human decision | status in store: suspended",
            "after approval: sent 120.0 to ACME",
        ],
    ),
    "numpy_blas.py": (["40"], ["BLAS threads inside the worker: [1]"]),
}


def test_every_example_is_covered() -> None:
    scripts = {p.name for p in (ROOT / "examples").glob("*.py") if p.name not in ("__init__.py", "services.py")}
    assert scripts == set(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_and_shows_its_point(script: str, tmp_path: Path) -> None:
    args, expected = CASES[script]
    env = {**os.environ, "AETHERFLOW_EXAMPLE_LOG": str(tmp_path / "log")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        cwd=tmp_path if script == "demo.py" else ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout, result.stdout
