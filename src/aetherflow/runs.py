"""What a worker reports when one node run ends: the record shared by the engine and the stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from .sentinels import UNSET
from .state import Commit
from .status import NodeStatus


class RunFacts(NamedTuple):
    """What the worker reports when one node run ends."""

    job_id: str
    node: str
    iteration: int
    attempt: int
    status: NodeStatus
    thread: str
    started: float
    finished: float
    output: Any = UNSET
    commits: Sequence[Commit] = ()
    error: str | None = None
    traceback: str | None = None
    item: int | None = None


# One run's facts after ``job_id``, in `RunFacts` order, as a plain tuple: what a worker
# hands to a job's run recorder (see `Store.run_recorder`).
RunFields = tuple[Any, ...]
