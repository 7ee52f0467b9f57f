"""The dashboard's web app (Starlette): server-rendered pages over the store's query API.

Reads go through `open_store(url)` only (jobs, job, node_runs, events, state_history,
stats, and the small dashboard queries); nothing named in a store is imported here.
Actions are POST forms with a CSRF token (`access`). This module only wires: each URL to
its page in `pages/`, the token check, and the error pages.
"""

from __future__ import annotations

from functools import partial

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import StoreError
from ..store import Store, open_store
from .access import TOKEN_ENV, TokenCheck
from .dashboard import HERE, Dashboard
from .pages import actions, flows, job, jobs, workers

__all__ = ["TOKEN_ENV", "create_app"]


def create_app(store: Store | str, *, token: str | None = None, cwd: str | None = None) -> Starlette:
    """The dashboard over ``store`` (a `Store` or a URL). With ``token``, every request must carry it."""
    dash = Dashboard(store if isinstance(store, Store) else open_store(store), token=token, cwd=cwd)
    routes = [
        Route("/", home),
        Route("/jobs", partial(jobs.page, dash)),
        Route("/jobs/{job_id}", partial(job.page, dash)),
        Route("/jobs/{job_id}/value", partial(job.value, dash)),
        Route("/jobs/{job_id}/cancel", partial(actions.cancel, dash), methods=["POST"]),
        Route("/jobs/{job_id}/resume", partial(actions.resume, dash), methods=["POST"]),
        Route("/flows", partial(flows.index, dash)),
        Route("/flows/{flow:path}", partial(flows.page, dash)),
        Route("/workers", partial(workers.page, dash)),
        Route("/healthz", health),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TokenCheck, token=token)] if token else [],
        exception_handlers={404: partial(no_page, dash), StoreError: partial(store_error, dash)},
    )
    app.state.dashboard = dash
    return app


def home(request: Request) -> Response:
    return RedirectResponse("/jobs", status_code=307)


def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def no_page(dash: Dashboard, request: Request, exc: Exception) -> Response:
    """A URL the dashboard has no page for."""
    return dash.page(
        "error.html",
        request,
        status_code=404,
        title="Not found",
        message=f"Nothing at {request.url.path}. The dashboard has Jobs, Flows and Workers pages.",
    )


async def store_error(dash: Dashboard, request: Request, exc: Exception) -> Response:
    """The store failed under a page (unreachable, locked): say so, as the service being unavailable."""
    return dash.page("error.html", request, status_code=503, title="Store error", message=str(exc))
