"""The dashboard's web app (Starlette): server-rendered pages over the store's query API.

Reads go through `open_store(url)` only (jobs, job, node_runs, events, state_history,
stats, and the small dashboard queries); nothing named in a store is imported here.
Actions are POST forms with a CSRF token: cancel records a request the owning worker
honours within a heartbeat; resume runs ``aetherflow resume`` as a separate process.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import StoreError
from ..status import JobStatus
from ..store import JobRecord, Store, open_store
from . import views

HERE = Path(__file__).parent
PAGE = 50
MAX_ROWS = 500  # node runs, events and state commits listed on a job's page (failures always)
MAX_BARS = 2000  # bars on a job's timeline
TOKEN_ENV = "AETHERFLOW_UI_TOKEN"


class Dashboard:
    """State shared by the requests of one app: the store, templates, CSRF secret, children."""

    def __init__(self, store: Store, *, token: str | None = None, cwd: str | None = None) -> None:
        self.store = store
        self.token = token
        self.cwd = cwd or os.getcwd()
        self.csrf = secrets.token_urlsafe(24)
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []  # (job id, its resume process)
        self.lock = threading.Lock()
        self.env = environment(store)

    def page(self, template: str, request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(request=request, csrf=self.csrf, path=request.url.path, **context)
        return HTMLResponse(html, status_code=status_code)

    def reap(self) -> None:
        with self.lock:
            self.children = [(j, p) for j, p in self.children if p.poll() is None]

    def resuming(self, job_id: str) -> bool:
        self.reap()
        return any(j == job_id for j, _ in self.children)


def environment(store: Store) -> Environment:
    """The templates, with every value escaped unless marked safe (the SVG pictures, built escaped)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        color=views.color,
        duration=views.duration,
        statuses=views.STATUSES,
        store_url=_safe_url(store.url),
        shown=views.shown,
    )
    env.filters["when"] = _when
    env.filters["short"] = lambda s, n=12: s if len(s) <= n else s[:n]
    return env


def job_context(st: Store, record: JobRecord, *, limit: int = views.TRUNCATE) -> dict[str, Any]:
    """What a job's page shows (also the one-file export of `aetherflow show --html`)."""
    runs = st.node_runs(record.id)
    events = st.events(record.id)
    history = st.state_history(record.id)
    topology = _topology(st, record.flow)
    names = [v["name"] for v in topology["vertices"]] if topology else []
    vertices = views.vertex_views(names, runs, record, topology)
    suspended = (
        next((r for r in reversed(runs) if r.status.value == "suspended"), None)
        if record.status is JobStatus.SUSPENDED
        else None
    )
    owner_alive = None
    if record.status in (JobStatus.RUNNING, JobStatus.PENDING):
        owner_alive = any(w.id == record.worker and w.alive for w in st.workers(time.time()))
    cancel_asked = any(e.type == "cancel_requested" for e in events) and record.status in (
        JobStatus.RUNNING,
        JobStatus.PENDING,
    )
    outputs = _node_outputs(st, record.id)
    commits = views.state_commits(history, events)
    small = min(limit, 400) if limit == views.TRUNCATE else limit
    return {
        "title": f"Job {record.id[:12]}",
        "job": record,
        "runs": _some(runs, MAX_ROWS, keep=lambda r: r.error is not None),
        "all_runs": len(runs),
        "events": events[-MAX_ROWS:],
        "all_events": len(events),
        "commits": commits[-MAX_ROWS:],
        "all_commits": len(commits),
        "graph": views.graph_svg(topology, vertices, record.id),
        "has_topology": topology is not None,
        "vertices": vertices,
        "gantt": views.gantt_svg(_some(runs, MAX_BARS, keep=lambda r: r.error is not None), record.worker),
        "gantt_sampled": len(runs) > MAX_BARS,
        "inputs": {k: views.shown(v, small) for k, v in record.inputs.items()},
        "output": views.shown(record.output, limit),
        "outputs": {k: views.shown(v, small) for k, v in outputs.items()},
        "suspended": suspended,
        "target": st.target_of(record.flow),
        "owner_alive": owner_alive,
        "cancel_asked": cancel_asked,
        "all_run_records": runs,
    }


def _safe_url(url: str) -> str:
    """The store URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}@{host}"
    return url


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def create_app(store: Store | str, *, token: str | None = None, cwd: str | None = None) -> Starlette:
    """The dashboard over ``store`` (a `Store` or a URL). With ``token``, every request must carry it."""
    st = store if isinstance(store, Store) else open_store(store)
    dash = Dashboard(st, token=token, cwd=cwd)

    def not_found(request: Request, message: str) -> HTMLResponse:
        return dash.page("error.html", request, status_code=404, title="Not found", message=message)

    def find_job(request: Request, job_id: str) -> JobRecord | HTMLResponse:
        try:
            return st.job(job_id)
        except StoreError:
            pass
        matches = [j for j in st.jobs(limit=10_000) if j.id.startswith(job_id)] if len(job_id) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            return not_found(request, f"{len(matches)} jobs start with {job_id!r}; give more characters of the id.")
        return not_found(
            request,
            f"No job {job_id!r} in this store ({_safe_url(st.url)}). It may have been pruned, or belong to another store; the Jobs page lists the jobs here.",
        )

    # -- pages ------------------------------------------------------------------------------

    def home(request: Request) -> Response:
        return RedirectResponse("/jobs", status_code=307)

    def jobs(request: Request) -> Response:
        q = request.query_params
        flow = q.get("flow") or None
        status = q.get("status") or None
        prefix = (q.get("id") or "").strip().lower()
        since, until = _parse_time(q.get("since")), _parse_time(q.get("until"))
        before = q.get("before")
        if status is not None and status not in views.STATUSES:
            status = None
        try:
            size = max(1, min(500, int(q.get("size", PAGE))))
        except ValueError:
            size = PAGE
        upper, cut = until, None
        if before:  # keyset pagination: jobs created before the last one shown
            try:
                cut = float(before)
                b = datetime.fromtimestamp(cut, tz=UTC) + timedelta(microseconds=1)
                upper = b if upper is None else min(upper, b)
            except (ValueError, OverflowError, OSError):
                cut = None
        if prefix:
            found = [
                j
                for j in st.jobs(flow=flow, status=status, since=since, until=upper, limit=10_000)
                if j.id.startswith(prefix)
            ]
        else:
            found = st.jobs(flow=flow, status=status, since=since, until=upper, limit=size + 3)
        if cut is not None:  # times are kept to the microsecond: drop the boundary row itself
            found = [j for j in found if j.created_at.timestamp() < cut]
        found = found[: size + 1]
        more = len(found) > size
        rows = found[:size]
        keep = {
            k: v
            for k, v in (
                ("flow", flow),
                ("status", status),
                ("id", prefix),
                ("since", q.get("since")),
                ("until", q.get("until")),
            )
            if v
        }
        next_url = (
            "/jobs?" + urlencode({**keep, "before": repr(rows[-1].created_at.timestamp())}) if more and rows else None
        )
        counts = st.status_counts(flow)
        live = any(j.status.value in ("running", "pending") for j in rows) or counts.get("running", 0) > 0
        return dash.page(
            "jobs.html",
            request,
            title="Jobs",
            jobs=rows,
            counts=counts,
            total=sum(counts.values()),
            flows=st.flows(),
            flow=flow or "",
            status=status or "",
            prefix=prefix,
            since=q.get("since", ""),
            until=q.get("until", ""),
            next_url=next_url,
            first_url=("/jobs?" + urlencode(keep)) if before else None,
            keep=keep,
            live=live,
        )

    def job(request: Request) -> Response:
        found = find_job(request, request.path_params["job_id"])
        if isinstance(found, Response):
            return found
        record = found
        return dash.page(
            "job.html",
            request,
            **job_context(st, record),
            live=record.status in (JobStatus.RUNNING, JobStatus.PENDING) or dash.resuming(record.id),
            message=request.query_params.get("message"),
        )

    def value(request: Request) -> Response:
        found = find_job(request, request.path_params["job_id"])
        if isinstance(found, Response):
            return found
        what = request.query_params.get("what", "output")
        record = found
        value: Any
        if what == "output":
            value = record.output
        elif what == "inputs":
            value = record.inputs
        elif what.startswith("input:") and what[6:] in record.inputs:
            value = record.inputs[what[6:]]
        elif what.startswith("node:"):
            outputs = _node_outputs(st, record.id)
            if what[5:] not in outputs:
                return not_found(request, f"Job {record.id} has no recorded output of node {what[5:]!r}.")
            value = outputs[what[5:]]
        elif what.startswith("state:"):
            try:
                value = st.state_history(record.id)[int(what[6:])].value
            except (ValueError, IndexError):
                return not_found(request, f"Job {record.id} has no state write number {what[6:]!r}.")
        elif what.startswith("traceback:"):
            try:
                run = st.node_runs(record.id)[int(what[10:])]
            except (ValueError, IndexError):
                return not_found(request, f"Job {record.id} has no node run number {what[10:]!r}.")
            return dash.page(
                "value.html",
                request,
                title=f"Traceback of {run.node}",
                job=record,
                what=what,
                text=run.traceback or run.error or "",
            )
        else:
            return not_found(
                request,
                f"Unknown value {what!r}: expected output, inputs, input:NAME, node:NAME, state:N or traceback:N.",
            )
        return dash.page(
            "value.html",
            request,
            title=f"{what} of job {record.id[:12]}",
            job=record,
            what=what,
            text=views.to_text(value),
        )

    def flows(request: Request) -> Response:
        rows = []
        for name in st.flows():
            s = st.stats(name)
            rows.append((name, s, sum(s.counts.values())))
        return dash.page("flows.html", request, title="Flows", rows=rows, rate_bar=views.rate_bar)

    def flow(request: Request) -> Response:
        name = request.path_params["flow"]
        if name not in st.flows():
            return not_found(
                request, f"No jobs of a flow named {name!r} in this store; the Flows page lists the flows here."
            )
        s = st.stats(name)
        recent = st.jobs(flow=name, limit=1000)
        nodes = sorted(s.nodes.items())
        return dash.page(
            "flow.html",
            request,
            title=f"Flow {name}",
            name=name,
            stats=s,
            nodes=nodes,
            rate_bar=views.rate_bar,
            durations=views.bars_svg([(n, ns.p50 * 1000, ns.p95 * 1000) for n, ns in nodes]),
            over_time=views.jobs_over_time_svg(recent),
            recent=recent[:20],
            target=st.target_of(name),
            has_topology=_topology(st, name) is not None,
        )

    def workers(request: Request) -> Response:
        now = time.time()
        ws = st.workers(now)
        owned: dict[str, list[JobRecord]] = {}
        for j in st.jobs(status="running", limit=1000) + st.jobs(status="pending", limit=1000):
            owned.setdefault(j.worker, []).append(j)
        return dash.page(
            "workers.html", request, title="Workers", workers=ws, owned=owned, now=datetime.now(UTC), live=True
        )

    # -- actions ------------------------------------------------------------------------------

    async def checked_form(request: Request) -> dict[str, str] | Response:
        form = await request.form()
        sent = form.get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, dash.csrf):
            return PlainTextResponse(
                "Refused: this form is stale or did not come from the dashboard (CSRF check failed); reload the page and try again.",
                status_code=403,
            )
        origin = request.headers.get("origin")
        if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host"):
            return PlainTextResponse("Refused: cross-origin request.", status_code=403)
        return {k: v for k, v in form.items() if isinstance(v, str)}

    async def cancel(request: Request) -> Response:
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        found = find_job(request, request.path_params["job_id"])
        if isinstance(found, Response):
            return found
        record = found
        if record.status is JobStatus.SUSPENDED:  # nothing runs it: record it cancelled here
            st.request_cancel(record.id, time.time(), "dashboard")
            st.set_job_status(
                record.id, JobStatus.CANCELLED, time.time(), error="cancelled from the dashboard while suspended"
            )
            message = "Cancelled."
        elif record.status in (JobStatus.RUNNING, JobStatus.PENDING):
            st.request_cancel(record.id, time.time(), "dashboard")
            message = f"Cancel requested: worker {record.worker} cancels the job at its next heartbeat (running nodes finish first)."
        else:
            message = f"The job is {record.status.value}; nothing to cancel."
        st.flush()
        return RedirectResponse(f"/jobs/{record.id}?" + urlencode({"message": message}), status_code=303)

    async def resume(request: Request) -> Response:
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        found = find_job(request, request.path_params["job_id"])
        if isinstance(found, Response):
            return found
        record = found
        target = st.target_of(record.flow)
        if target is None:
            message = f"Flow {record.flow!r} has no known code location (it was not started with `aetherflow run`); resume it from Python with worker.resume()."
            return RedirectResponse(f"/jobs/{record.id}?" + urlencode({"message": message}), status_code=303)
        args = ["resume", record.id, "--store", st.url]
        answer = form.get("answer", "").strip()
        if answer:
            try:
                json.loads(answer)
            except ValueError:
                answer = json.dumps(answer)  # plain text: a JSON string
            args += ["--answer", answer]
        for line in form.get("inputs", "").splitlines():
            if line.strip():
                if "=" not in line:
                    message = f"Inputs are one key=value per line; found {line.strip()!r}."
                    return RedirectResponse(f"/jobs/{record.id}?" + urlencode({"message": message}), status_code=303)
                args += ["--input", line.strip()]
        dash.reap()
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - handed to the child
            "wb", prefix=f"aetherflow-resume-{record.id[:12]}-", suffix=".log", delete=False
        )
        with log:
            child = subprocess.Popen(
                [sys.executable, "-c", "from aetherflow.cli import main; main()", *args],
                cwd=dash.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        with dash.lock:
            dash.children.append((record.id, child))
        message = f"Resuming in process {child.pid} (log: {log.name})."
        return RedirectResponse(f"/jobs/{record.id}?" + urlencode({"message": message}), status_code=303)

    def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", home),
        Route("/jobs", jobs),
        Route("/jobs/{job_id}", job),
        Route("/jobs/{job_id}/value", value),
        Route("/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/jobs/{job_id}/resume", resume, methods=["POST"]),
        Route("/flows", flows),
        Route("/flows/{flow:path}", flow),
        Route("/workers", workers),
        Route("/healthz", health),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(TokenCheck, token=token)] if token else []
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={404: _not_found_handler(dash), StoreError: _store_error_handler(dash)},
    )
    app.state.dashboard = dash
    return app


def _some(runs: list[Any], limit: int, keep: Callable[[Any], bool]) -> list[Any]:
    """At most about ``limit`` runs, evenly spread, in order, always with those ``keep`` says (failures)."""
    if len(runs) <= limit:
        return runs
    step = len(runs) / limit
    picked = {int(k * step) for k in range(limit)} | {k for k, r in enumerate(runs) if keep(r)}
    return [runs[k] for k in sorted(picked)]


def _topology(st: Store, flow: str) -> dict[str, Any] | None:
    text = st.topology_of(flow)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "vertices" in data else None


def _node_outputs(st: Store, job_id: str) -> dict[str, Any]:
    """The last output of each completed node (read from the store's progress: data only)."""
    try:
        progress = st.progress(job_id)
    except StoreError:
        return {}
    outputs: dict[str, Any] = {}
    items: dict[str, dict[int, Any]] = {}
    for node, item, output in progress.completed:
        if item is None:
            outputs[node] = output
        else:
            items.setdefault(node, {})[item] = output
    for node, by_item in items.items():
        outputs.setdefault(node, [by_item[k] for k in sorted(by_item)])
    return outputs


def _not_found_handler(dash: Dashboard) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        return dash.page(
            "error.html",
            request,
            status_code=404,
            title="Not found",
            message=f"Nothing at {request.url.path}. The dashboard has Jobs, Flows and Workers pages.",
        )

    return handler


def _store_error_handler(dash: Dashboard) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        return dash.page("error.html", request, status_code=503, title="Store error", message=str(exc))

    return handler


class TokenCheck(BaseHTTPMiddleware):
    """Every request carries the token: ``Authorization: Bearer``, the cookie, or ``?token=`` once (then a cookie)."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = (
            request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            or request.cookies.get("aetherflow_token")
            or ""
        )
        from_query = request.query_params.get("token", "")
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return await call_next(request)
        if from_query and hmac.compare_digest(from_query.encode(), self.token.encode()):
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie(
                "aetherflow_token",
                self.token,
                httponly=True,
                samesite="strict",
                max_age=int(timedelta(days=30).total_seconds()),
            )
            return response
        return PlainTextResponse(
            f"This dashboard needs its token: open it with ?token=... once, or send 'Authorization: Bearer ...' (the token given with --token or {TOKEN_ENV}).",
            status_code=401,
        )
