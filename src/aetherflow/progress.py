"""Live progress (rich) when output is a terminal; nothing otherwise.

Two honest views: `job_progress` watches many jobs (``worker.map``) and counts them as
they end, in whatever order; `progress_bar` counts units the caller names (the CLI's
node runs), without a total it cannot know.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .status import JobStatus

_REFRESH = 0.1  # seconds between two looks at the jobs' statuses


@contextmanager
def job_progress(jobs: Sequence[Any], label: str, *, enabled: bool = True) -> Iterator[None]:
    """While the block runs, draw how many of ``jobs`` are done, failed and running, with rate and ETA.

    Jobs are counted as they end, not in input order, so one slow first job does not
    hold the bar at 0.
    """
    if not enabled or not jobs or not sys.stderr.isatty():
        yield
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jobs ·"),
        TextColumn("{task.fields[running]} running · {task.fields[failed]} failed ·"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(label or "jobs", total=len(jobs), running=0, failed=0, rate="")
        stop = threading.Event()

        def refresh() -> None:
            done, failed, running = _counts(jobs)
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f"{done / elapsed:.1f} jobs/s ·" if elapsed > 0 and done else ""
            bar.update(task, completed=done, running=running, failed=failed, rate=rate)

        def watch() -> None:
            while not stop.wait(_REFRESH):
                refresh()

        watcher = threading.Thread(target=watch, name="aetherflow-progress", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            refresh()


def _counts(jobs: Sequence[Any]) -> tuple[int, int, int]:
    """(ended, failed, running) among ``jobs``."""
    done = failed = running = 0
    for job in jobs:
        status = job.status
        if status is JobStatus.RUNNING or status is JobStatus.PENDING:
            running += 1
        else:
            done += 1
            failed += status is JobStatus.FAILED
    return done, failed, running


@contextmanager
def progress_bar(label: str, unit: str, *, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yields ``advance()``, which counts one ``unit``; draws only if ``enabled`` and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield _nothing
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:.0f} " + unit),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda: bar.advance(task)


def _nothing() -> None:
    return None
