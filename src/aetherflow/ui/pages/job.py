"""One job's page (``/jobs/{id}``) and its values in full (``/jobs/{id}/value?what=...``).

`job_context` is also the one-file export of ``aetherflow show --html`` (`ui.export`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from ...status import JobStatus
from ...store import EventRecord, JobRecord, NodeRunRecord, Store
from .. import records, views
from ..dashboard import Dashboard

MAX_ROWS = 500  # node runs, events and state commits listed on a job's page (failures always)
MAX_BARS = 2000  # bars on a job's timeline
VALUES = "output, inputs, input:NAME, node:NAME, state:N or traceback:N"

T = TypeVar("T")


def page(dash: Dashboard, request: Request) -> Response:
    found = dash.find_job(request, request.path_params["job_id"])
    if isinstance(found, Response):
        return found
    record = found
    return dash.page(
        "job.html",
        request,
        **job_context(dash.store, record),
        live=record.status in (JobStatus.RUNNING, JobStatus.PENDING) or dash.resuming(record.id),
        message=request.query_params.get("message"),
    )


def job_context(st: Store, record: JobRecord, *, limit: int = views.TRUNCATE) -> dict[str, Any]:
    """What a job's page shows (also the one-file export of `aetherflow show --html`)."""
    runs = st.node_runs(record.id)
    events = st.events(record.id)
    topology = records.topology(st, record.flow)
    names = [v["name"] for v in topology["vertices"]] if topology else []
    vertices = views.vertex_views(names, runs, record, topology)
    outputs = records.node_outputs(st, record.id)
    commits = views.state_commits(st.state_history(record.id), events)
    small = min(limit, 400) if limit == views.TRUNCATE else limit
    return {
        "title": f"Job {record.id[:12]}",
        "job": record,
        "runs": sample(runs, MAX_ROWS, keep=_failed),
        "all_runs": len(runs),
        "events": events[-MAX_ROWS:],
        "all_events": len(events),
        "commits": commits[-MAX_ROWS:],
        "all_commits": len(commits),
        "graph": views.graph_svg(topology, vertices, record.id),
        "has_topology": topology is not None,
        "vertices": vertices,
        "gantt": views.gantt_svg(sample(runs, MAX_BARS, keep=_failed), record.worker),
        "gantt_sampled": len(runs) > MAX_BARS,
        "inputs": {k: views.shown(v, small) for k, v in record.inputs.items()},
        "output": views.shown(record.output, limit),
        "outputs": {k: views.shown(v, small) for k, v in outputs.items()},
        "suspended": _suspension(record, runs),
        "target": st.target_of(record.flow),
        "owner_alive": _owner_alive(st, record),
        "cancel_asked": _cancel_asked(record, events),
        "all_run_records": runs,
    }


def sample(runs: list[T], limit: int, keep: Callable[[T], bool]) -> list[T]:
    """At most about ``limit`` runs, evenly spread, in order, always with those ``keep`` says (failures)."""
    if len(runs) <= limit:
        return runs
    step = len(runs) / limit
    picked = {int(k * step) for k in range(limit)} | {k for k, r in enumerate(runs) if keep(r)}
    return [runs[k] for k in sorted(picked)]


def _failed(run: NodeRunRecord) -> bool:
    return run.error is not None


def _suspension(record: JobRecord, runs: Sequence[NodeRunRecord]) -> NodeRunRecord | None:
    """The run that suspended the job (it holds the question), if the job waits for an answer."""
    if record.status is not JobStatus.SUSPENDED:
        return None
    return next((r for r in reversed(runs) if r.status.value == "suspended"), None)


def _owner_alive(st: Store, record: JobRecord) -> bool | None:
    """Whether the worker running the job still beats; None once the job has ended."""
    if record.status not in (JobStatus.RUNNING, JobStatus.PENDING):
        return None
    return any(w.id == record.worker and w.alive for w in st.workers(time.time()))


def _cancel_asked(record: JobRecord, events: Sequence[EventRecord]) -> bool:
    return any(e.type == "cancel_requested" for e in events) and record.status in (
        JobStatus.RUNNING,
        JobStatus.PENDING,
    )


# -- one value in full -----------------------------------------------------------------------


def value(dash: Dashboard, request: Request) -> Response:
    found = dash.find_job(request, request.path_params["job_id"])
    if isinstance(found, Response):
        return found
    what = request.query_params.get("what", "output")
    try:
        title, text = value_text(dash.store, found, what)
    except LookupError as e:
        return dash.not_found(request, str(e))
    return dash.page("value.html", request, title=title, job=found, what=what, text=text)


def value_text(st: Store, record: JobRecord, what: str) -> tuple[str, str]:
    """The title and text of the value ``what`` names; LookupError saying why when there is none."""
    if what.startswith("traceback:"):
        run = _numbered(st.node_runs(record.id), what[10:], f"Job {record.id} has no node run number {what[10:]!r}.")
        return f"Traceback of {run.node}", run.traceback or run.error or ""
    return f"{what} of job {record.id[:12]}", views.to_text(_stored_value(st, record, what))


def _stored_value(st: Store, record: JobRecord, what: str) -> Any:
    kind, colon, name = what.partition(":")
    if what == "output":
        return record.output
    if what == "inputs":
        return record.inputs
    if kind == "input" and colon and name in record.inputs:
        return record.inputs[name]
    if kind == "node" and colon:
        outputs = records.node_outputs(st, record.id)
        if name not in outputs:
            raise LookupError(f"Job {record.id} has no recorded output of node {name!r}.")
        return outputs[name]
    if kind == "state" and colon:
        return _numbered(
            st.state_history(record.id), name, f"Job {record.id} has no state write number {name!r}."
        ).value
    raise LookupError(f"Unknown value {what!r}: expected {VALUES}.")


def _numbered(rows: Sequence[T], number: str, missing: str) -> T:
    """``rows[number]``, as the value page's ``state:N`` and ``traceback:N`` count (negative from the end)."""
    try:
        return rows[int(number)]
    except (ValueError, IndexError):
        raise LookupError(missing) from None
