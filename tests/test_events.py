"""Event hooks: worker.on(...) and the events the engine emits (events.py)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from aetherflow import (
    JobSuspendedError,
    NodeError,
    Suspend,
    Worker,
    node,
)
from aetherflow.events import EVENTS
from shapes import inc


def test_on_event_hooks_see_node_and_job_events() -> None:
    events = []
    with Worker(threads=2, on_event=lambda e, d: events.append(e)) as w:
        inc.run({"x": 1}, worker=w)
    assert events == ["job_started", "node_started", "node_completed", "job_finished"]


def test_worker_on_registers_one_event_and_rejects_unknown_names() -> None:
    failed = []
    with Worker(threads=1) as w:
        w.on("node_failed", lambda e, d: failed.append((d["node"], type(d["error"]).__name__)))

        @node
        def boom() -> None:
            raise ValueError("x")

        with pytest.raises(NodeError):
            boom.run(worker=w)
        with pytest.raises(ValueError, match="unknown event 'node_done'"):
            w.on("node_done", print)
    assert failed == [("boom", "NodeError")]


DOC = Path(__file__).parent.parent / "docs" / "observability.md"


def _documented_events() -> dict[str, set[str]]:
    """The events table of docs/observability.md: event -> its payload keys."""
    events = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].strip("`") in EVENTS:
            events[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", cells[2]))
    return events


def test_every_event_and_its_payload_keys_are_documented() -> None:
    seen: dict[str, set[str]] = {}
    calls = itertools.count(1)

    @node(retries=1, retry_delay=0)
    def flaky() -> list[int]:
        if next(calls) == 1:
            raise ConnectionError("lost")
        return [1, 2]

    @node
    def each(flaky: int) -> int:
        return flaky

    @node
    def broken() -> None:
        raise ValueError("no")

    @node
    def waits() -> None:
        raise Suspend("later")

    with Worker(threads=1, on_event=lambda event, data: seen.setdefault(event, set()).update(data)) as w:
        w.run(flaky.map(each))
        with pytest.raises(NodeError):
            w.run(broken)
        with pytest.raises(JobSuspendedError):
            w.run(waits)
    assert set(seen) == set(EVENTS)
    documented = _documented_events()
    assert {e: sorted(k) for e, k in documented.items()} == {e: sorted(k) for e, k in seen.items()}
