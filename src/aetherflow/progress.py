"""A live progress bar (rich) when output is a terminal; nothing otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, label: str, *, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yields ``advance()``; draws a bar only if ``enabled`` and stderr is a terminal."""
    if not enabled or total == 0 or not sys.stderr.isatty():
        yield _nothing
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task(label or "jobs", total=total)
        yield lambda: bar.advance(task)


def _nothing() -> None:
    return None
