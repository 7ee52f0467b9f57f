"""The commands that read a store's history: ``jobs``, ``show`` and ``stats``.

They open the store read-only when it exists, and import no flow code (a store's targets
name code that a reader has not chosen to run), except ``show --target``, which asks to.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import LEASE, UsageError, argument, full_id, json_option, open_to_read, store_option
from .output import err, escape, out, styled, table

if TYPE_CHECKING:
    from rich.table import Table

    from ..store import Store

_STATUSES = ("pending", "running", "completed", "failed", "suspended", "cancelled")


@click.command()
@click.option("--flow", help="Only this flow.")
@click.option("--status", help="|".join(_STATUSES))
@click.option("--since", help="ISO time, or an age like 30m, 2h, 7d.")
@click.option("--limit", type=click.IntRange(min=1), default=20, help="How many jobs to list, newest first.")
@store_option
@json_option
def jobs(flow: str | None, status: str | None, since: str | None, limit: int, store: str, as_json_: bool) -> None:
    """List jobs, newest first."""
    from ..store.records import as_json

    if status is not None and status not in _STATUSES:
        raise UsageError(f"--status must be one of {', '.join(_STATUSES)}; found {status!r}.")
    st = open_to_read(store)
    records = st.jobs(flow=flow, status=status, since=_when(since), limit=limit)
    if as_json_:
        print(json.dumps([as_json(r) for r in records]))
        return
    listing = table("id", "flow", "status", "created", "duration", "error")
    listing.columns[0].no_wrap = True
    orphans = 0
    for r in records:
        shown = styled(r.status.value)
        if _orphaned(st, r):
            shown += " [yellow](owner gone)[/]"
            orphans += 1
        listing.add_row(
            r.id[:12],
            escape(r.flow),
            shown,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _duration(r.started_at, r.finished_at),
            escape(_first_line(r.error)),
        )
    out.print(listing)
    if orphans:
        err.print(
            f"{orphans} running job(s) belong to a process that is gone: `aetherflow recover` takes them over.",
            highlight=False,
        )


@click.command()
@argument("job_id", help="A job id (a unique prefix is enough).")
@store_option
@json_option
@click.option("--html", type=click.Path(path_type=Path), help="Write a self-contained HTML report here.")
@click.option("--target", help="path/to/file.py:flow to draw the flow graph in the HTML report (its code is imported).")
def show(job_id: str, store: str, as_json_: bool, html: Path | None, target: str | None) -> None:
    """One job: its status and a per-node timeline."""
    st = open_to_read(store)
    job = st.job(full_id(st, job_id))
    runs = st.node_runs(job.id)
    if html is not None:
        _write_html(st, job, runs, html, target)
    elif as_json_:
        from ..store.records import as_json

        print(json.dumps({"job": as_json(job), "node_runs": [as_json(r) for r in runs]}))
    else:
        _print_job(st, job, runs)


@click.command()
@argument("flow", help="A flow name.")
@click.option("--since")
@store_option
@json_option
def stats(flow: str, since: str | None, store: str, as_json_: bool) -> None:
    """Counts, success rate and per-node p50/p95 of one flow."""
    from ..store.records import as_json

    st = open_to_read(store)
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
    nodes = table("node", "runs", "failed", "p50 (ms)", "p95 (ms)")
    for name, n in sorted(s.nodes.items()):
        nodes.add_row(escape(name), str(n.runs), str(n.failed), f"{n.p50 * 1000:.2f}", f"{n.p95 * 1000:.2f}")
    out.print(nodes)


def _write_html(st: Store, job: Any, runs: list[Any], html: Path, target: str | None) -> None:
    """``show --html``: the dashboard's job page as one file, or without the 'ui' extra the plain report."""
    try:  # the graph comes from the stored topology (no code imported)
        from ..ui.export import job_html

        html.write_text(job_html(st, job.id))
        print(f"wrote {html}: the flow graph and a timeline of {len(runs)} node runs")
    except ImportError:  # the plain report draws the graph only from a --target the user names
        from ..report import html_report
        from ..targets import load_target

        graph = load_target(target).graph if target else None
        html.write_text(html_report(job, runs, graph, stored_target=None if target else st.target_of(job.flow)))
        drawn = "the flow graph and " if graph is not None else ""
        print(f"wrote {html}: {drawn}a timeline of {len(runs)} node runs")


def _print_job(st: Store, job: Any, runs: list[Any]) -> None:
    """``show``'s text: the job's status and duration, whether its owner is gone, its error, its timeline."""
    out.print(
        f"[bold]{escape(job.flow)}[/] job {job.id}: {styled(job.status.value)}  {_duration(job.started_at, job.finished_at)}",
        highlight=False,
    )
    if _orphaned(st, job):
        out.print(
            f"[yellow]Its owning process is gone (worker '{escape(job.worker)}'): `aetherflow recover` takes it over.[/]",
            highlight=False,
        )
    if job.error:
        out.print(f"  error: {escape(job.error)}", highlight=False)
    out.print(_timeline(job, runs))


def _timeline(job: Any, runs: list[Any]) -> Table:
    """One row per node run, its start in milliseconds from the job's."""
    rows = table("node", "status", "iter", "try", "thread", "start (ms)", "duration")
    t0 = job.started_at or job.created_at
    for r in runs:
        offset = (r.started_at - t0).total_seconds() * 1000
        rows.add_row(
            escape(r.node + (f"[{r.item}]" if r.item is not None else "")),
            styled(r.status.value),
            str(r.iteration),
            str(r.attempt),
            escape(r.thread),
            f"{offset:.1f}",
            _duration(r.started_at, r.finished_at),
        )
    return rows


def _orphaned(st: Store, record: Any) -> bool:
    """A job recorded running or pending whose owning process is gone (see Store.orphaned_jobs)."""
    return record.status in ("running", "pending") and not st.owner_alive(record.id, time.time(), LEASE)


def _first_line(text: str | None) -> str:
    """An error's first line, without the "Node 'x' (job ..., attempt n): " preamble the table already shows."""
    line = (text or "").strip().split("\n", 1)[0]
    return re.sub(r"^Node '([^']*)' \(job [0-9a-f]+, attempt \d+\): ", r"\1: ", line)[:100]


def _when(text: str | None) -> datetime | None:
    """``--since``: an ISO time (UTC unless it says otherwise), or an age like 30m, 2h, 7d back from now."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[:-1].isdigit() and text[-1] in units:  # int() refuses some digits isdigit() accepts ("²")
            return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
        when = datetime.fromisoformat(text)
    except (ValueError, OverflowError):  # not a time, or an age reaching before year 1
        raise UsageError(
            f"--since {text!r}: expected an ISO time (2026-01-31T12:00) or an age like 30m, 2h, 7d."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _duration(start: datetime | None, end: datetime | None) -> str:
    """A run's duration in ms under a second, else in seconds; empty while it has not ended."""
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
