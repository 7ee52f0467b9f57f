"""What a store returns from its queries: frozen records, times as aware UTC datetimes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from typing import Any, overload

from ..status import JobStatus, NodeStatus


@overload
def utc(ts: float) -> datetime: ...
@overload
def utc(ts: None) -> None: ...
@overload
def utc(ts: float | None) -> datetime | None: ...
def utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def epoch(when: datetime | float | None) -> float | None:
    if when is None or isinstance(when, (int, float)):
        return when
    if when.tzinfo is None:
        raise ValueError(f"expected an aware datetime (with tzinfo), found naive {when!r}")
    return when.timestamp()


@dataclass(frozen=True)
class JobRecord:
    id: str
    flow: str
    status: JobStatus
    inputs: dict[str, Any]
    output: Any
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str


@dataclass(frozen=True)
class NodeRunRecord:
    job_id: str
    node: str
    iteration: int
    attempt: int
    status: NodeStatus
    thread: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None = None
    traceback: str | None = None
    item: int | None = None  # the item index, for one run of a mapped node


@dataclass(frozen=True)
class EventRecord:
    seq: int
    ts: datetime
    type: str
    node: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StateRecord:
    scope: str
    namespace: str
    key: str
    value: Any
    version: int
    ts: datetime
    deleted: bool = False


@dataclass(frozen=True)
class WorkerRecord:
    id: str
    pid: int | None
    host: str | None
    heartbeat: datetime | None  # its last heartbeat
    lease: float | None  # seconds it counts as alive after a heartbeat (off this host)
    alive: bool


@dataclass(frozen=True)
class NodeStats:
    runs: int
    failed: int
    p50: float  # seconds
    p95: float


@dataclass(frozen=True)
class FlowStats:
    flow: str
    counts: dict[str, int]  # job status -> number of jobs
    success_rate: float  # completed / finished
    nodes: dict[str, NodeStats]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def as_json(obj: Any) -> Any:
    """A record (dataclass) as JSON-able data, datetimes as ISO text."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return as_json(asdict(obj))
    if isinstance(obj, dict):
        return {k: as_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [as_json(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "value") and isinstance(getattr(obj, "value", None), str):
        return obj.value
    return obj
