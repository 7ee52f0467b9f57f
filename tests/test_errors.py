"""The error tree: docs/errors.md draws it, and every error is where the drawing says."""

from __future__ import annotations

import re
from pathlib import Path

import aetherflow
from aetherflow import AetherFlowError

DOC = Path(__file__).parent.parent / "docs" / "errors.md"


def _drawn_tree() -> dict[str, str | None]:
    """Each error in the drawing -> its parent in the drawing (None for the root)."""
    block = DOC.read_text().split("```")[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        found = re.search(r"([A-Z][A-Za-z]+(?:Error|Exception))\b", line)
        if not found or line.startswith("Suspend"):
            continue
        depth = found.start()
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[found.group(1)] = stack[-1][1] if stack else None
        stack.append((depth, found.group(1)))
    return parents


def _error_class(name: str) -> type[BaseException]:
    from aetherflow import errors, job, shipping

    for module in (aetherflow, errors, job, shipping):
        if hasattr(module, name):
            return getattr(module, name)  # type: ignore[no-any-return]
    from aetherflow import dask

    return getattr(dask, name)  # type: ignore[no-any-return]


def test_every_drawn_error_derives_from_the_error_drawn_above_it() -> None:
    tree = _drawn_tree()
    assert tree["AetherFlowError"] is None and len(tree) > 10
    for name, parent in tree.items():
        if parent is not None:
            assert issubclass(_error_class(name), _error_class(parent)), f"{name} should derive from {parent}"


def test_every_public_error_is_drawn() -> None:
    public = {
        name
        for name in aetherflow.__all__
        if isinstance(value := getattr(aetherflow, name), type) and issubclass(value, AetherFlowError)
    }
    assert public <= set(_drawn_tree()), f"not in docs/errors.md: {sorted(public - set(_drawn_tree()))}"
