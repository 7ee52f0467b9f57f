"""Code blocks in the README and the docs run as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(page: Path) -> list[str]:
    text = page.read_text()
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "# not run" not in b and ">>>" not in b]


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(page: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
        for block in _blocks(page):
            exec(compile(block, str(page), "exec"), namespace)
    finally:
        os.chdir(cwd)
