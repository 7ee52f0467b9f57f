"""The Workers page (``/workers``): each worker's heartbeat, and the jobs it runs or has queued."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from ...store import JobRecord
from ..dashboard import Dashboard


def page(dash: Dashboard, request: Request) -> Response:
    st = dash.store
    workers = st.workers(time.time())
    owned: dict[str, list[JobRecord]] = {}
    for j in st.jobs(status="running", limit=1000) + st.jobs(status="pending", limit=1000):
        owned.setdefault(j.worker, []).append(j)
    return dash.page(
        "workers.html",
        request,
        title="Workers",
        workers=workers,
        owned=owned,
        now=datetime.now(UTC),
        live=True,
    )
