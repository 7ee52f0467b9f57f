"""The benchmark script keeps working: its --quick mode runs every section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_compare_quick_writes_a_page_with_ratios_and_charts(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--quick", "--write", str(page)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = page.read_text()
    for title in (
        "Engine overhead per node",
        "Scopes",
        "State commits",
        "Durable cost per node",
        "History queries",
        "Command-line start-up",
        "Import",
    ):
        assert f"## {title}" in text
    assert "| measured | baseline | ratio | target |" in text
    assert (tmp_path / "img" / "engine.png").stat().st_size > 1000
