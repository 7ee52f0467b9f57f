"""The commands that read a store's history: ``jobs``, ``show`` and ``stats``."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .options import DEFAULT_STORE, LEASE, JsonOpt, StoreOpt, UsageError, _full_id, _open_to_read
from .output import _styled, _table, err, escape, out

if TYPE_CHECKING:
    from ..store import Store


def jobs(
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending|running|completed|failed|suspended|cancelled")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time, or an age like 30m, 2h, 7d.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    store: StoreOpt = DEFAULT_STORE,
    as_json_: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    from ..store.records import as_json

    if status is not None and status not in _STATUSES:
        raise UsageError(f"--status must be one of {', '.join(_STATUSES)}; found {status!r}.")
    st = _open_to_read(store)
    records = st.jobs(flow=flow, status=status, since=_when(since), limit=limit)
    if as_json_:
        print(json.dumps([as_json(r) for r in records]))
        return
    table = _table("id", "flow", "status", "created", "duration", "error")
    table.columns[0].no_wrap = True
    orphans = 0
    for r in records:
        status = _styled(r.status.value)
        if _orphaned(st, r):
            status += " [yellow](owner gone)[/]"
            orphans += 1
        table.add_row(
            r.id[:12],
            escape(r.flow),
            status,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _duration(r.started_at, r.finished_at),
            escape(_first_line(r.error)),
        )
    out.print(table)
    if orphans:
        err.print(
            f"{orphans} running job(s) belong to a process that is gone: `aetherflow recover` takes them over.",
            highlight=False,
        )


_STATUSES = ("pending", "running", "completed", "failed", "suspended", "cancelled")


def _first_line(text: str | None) -> str:
    """An error's first line, without the "Node 'x' (job ..., attempt n): " preamble the table already shows."""
    line = (text or "").strip().split("\n", 1)[0]
    return re.sub(r"^Node '([^']*)' \(job [0-9a-f]+, attempt \d+\): ", r"\1: ", line)[:100]


def _orphaned(st: Store, record: Any) -> bool:
    """A job recorded running or pending whose owning process is gone (see Store.orphaned_jobs)."""
    return record.status in ("running", "pending") and not st.owner_alive(record.id, time.time(), LEASE)


def show(
    job_id: Annotated[str, typer.Argument(help="A job id (a unique prefix is enough).")],
    store: StoreOpt = DEFAULT_STORE,
    as_json_: JsonOpt = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="path/to/file.py:flow to draw the flow graph in the HTML report (its code is imported)."
        ),
    ] = None,
) -> None:
    """One job: its status and a per-node timeline."""
    from ..report import html_report
    from ..store.records import as_json
    from ..targets import load_target

    st = _open_to_read(store)
    job = st.job(_full_id(st, job_id))
    runs = st.node_runs(job.id)
    if html is not None:
        try:  # the dashboard's job page as one file; the graph comes from the stored topology (no code imported)
            from ..ui.export import job_html

            html.write_text(job_html(st, job.id))
            print(f"wrote {html}: the flow graph and a timeline of {len(runs)} node runs")
        except ImportError:  # without the 'ui' extra: the plain report, its graph only from a --target the user names
            graph = load_target(target).graph if target else None
            html.write_text(html_report(job, runs, graph, stored_target=None if target else st.target_of(job.flow)))
            drawn = "the flow graph and " if graph is not None else ""
            print(f"wrote {html}: {drawn}a timeline of {len(runs)} node runs")
        return
    if as_json_:
        print(json.dumps({"job": as_json(job), "node_runs": [as_json(r) for r in runs]}))
        return
    out.print(
        f"[bold]{escape(job.flow)}[/] job {job.id}: {_styled(job.status.value)}  {_duration(job.started_at, job.finished_at)}",
        highlight=False,
    )
    if _orphaned(st, job):
        out.print(
            f"[yellow]Its owning process is gone (worker '{escape(job.worker)}'): `aetherflow recover` takes it over.[/]",
            highlight=False,
        )
    if job.error:
        out.print(f"  error: {escape(job.error)}", highlight=False)
    table = _table("node", "status", "iter", "try", "thread", "start (ms)", "duration")
    t0 = job.started_at or job.created_at
    for r in runs:
        offset = (r.started_at - t0).total_seconds() * 1000
        table.add_row(
            escape(r.node + (f"[{r.item}]" if r.item is not None else "")),
            _styled(r.status.value),
            str(r.iteration),
            str(r.attempt),
            escape(r.thread),
            f"{offset:.1f}",
            _duration(r.started_at, r.finished_at),
        )
    out.print(table)


def stats(
    flow: Annotated[str, typer.Argument(help="A flow name.")],
    since: Annotated[str | None, typer.Option("--since")] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json_: JsonOpt = False,
) -> None:
    """Counts, success rate and per-node p50/p95 of one flow."""
    from ..store.records import as_json

    st = _open_to_read(store)
    s = st.stats(flow, since=_when(since))
    if as_json_:
        print(json.dumps(as_json(s)))
        return
    out.print(
        f"[bold]{escape(flow)}[/]: "
        + ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()))
        + f"; success rate {s.success_rate:.1%}",
        highlight=False,
    )
    table = _table("node", "runs", "failed", "p50 (ms)", "p95 (ms)")
    for name, n in sorted(s.nodes.items()):
        table.add_row(escape(name), str(n.runs), str(n.failed), f"{n.p50 * 1000:.2f}", f"{n.p95 * 1000:.2f}")
    out.print(table)


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1] in units:
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected an ISO time (2026-01-31T12:00) or an age like 30m, 2h, 7d."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
