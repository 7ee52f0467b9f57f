"""What a worker tells the outside world: event hooks (``worker.on``) and their log records.

Hooks are called on the thread that reached the event; a hook that raises is logged and
does not disturb the job. ``aetherflow.worker`` is the logger (see docs/observability.md).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("aetherflow.worker")

EVENTS = ("job_started", "node_started", "node_retry", "node_completed", "node_failed", "job_finished")

Hook = Callable[[str, dict[str, Any]], None]


class Hooks(defaultdict[str, list[Hook]]):
    """Event name → the hooks to call. A dict, so ``if hooks:`` costs what a dict's test costs (per node)."""

    def __init__(self, on_every_event: Hook | None = None) -> None:
        super().__init__(list)
        if on_every_event is not None:
            for event in EVENTS:
                self[event].append(on_every_event)

    def on(self, event: str, fn: Hook) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {', '.join(EVENTS)}.")
        self[event].append(fn)

    def emit(self, event: str, **data: Any) -> None:
        for fn in self.get(event, ()):
            try:
                fn(event, data)
            except Exception:
                log.error("on_event hook %r failed for %s", fn, event, exc_info=True)

    def wanted(self) -> bool:
        """Whether per-node events are wanted: someone listens, or DEBUG logs are on."""
        return bool(self) or log.isEnabledFor(logging.DEBUG)

    def node_started(self, job_id: str, name: str, item: int | None) -> None:
        if self:
            self.emit("node_started", job=job_id, node=name, item=item)
        log.debug("Node '%s' started in job %s", name, job_id, extra={"job_id": job_id, "node": name})
