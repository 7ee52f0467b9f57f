"""The state one dashboard app shares between its requests, and what every page needs from it.

A page handler takes the `Dashboard` as its first argument (`create_app` binds it), so
the store, the templates and the resume processes are handed to it, never looked up.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..errors import StoreError
from ..store import JobRecord, Store
from . import views

HERE = Path(__file__).parent


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

    def not_found(self, request: Request, message: str) -> HTMLResponse:
        return self.page("error.html", request, status_code=404, title="Not found", message=message)

    def find_job(self, request: Request, job_id: str) -> JobRecord | HTMLResponse:
        """The job ``job_id`` names, in full or by a prefix of four characters or more; else a 404 page saying why."""
        try:
            return self.store.job(job_id)
        except StoreError:
            pass
        matches = [j for j in self.store.jobs(limit=10_000) if j.id.startswith(job_id)] if len(job_id) >= 4 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            return self.not_found(
                request, f"{len(matches)} jobs start with {job_id!r}; give more characters of the id."
            )
        return self.not_found(
            request,
            f"No job {job_id!r} in this store ({safe_url(self.store.url)}). It may have been pruned, or belong to another store; the Jobs page lists the jobs here.",
        )

    def started(self, job_id: str, child: subprocess.Popen[bytes]) -> None:
        """Keep a resume process, so the job's page stays live while it runs."""
        with self.lock:
            self.children.append((job_id, child))

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
        store_url=safe_url(store.url),
        shown=views.shown,
    )
    env.filters["when"] = _when
    env.filters["short"] = lambda s, n=12: s if len(s) <= n else s[:n]
    return env


def safe_url(url: str) -> str:
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
