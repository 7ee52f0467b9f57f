"""The Flows page (``/flows``: each flow's counts and success rate) and a flow's page (``/flows/{name}``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import records, views
from ..dashboard import Dashboard


def index(dash: Dashboard, request: Request) -> Response:
    st = dash.store
    rows = []
    for name in st.flows():
        s = st.stats(name)
        rows.append((name, s, sum(s.counts.values())))
    return dash.page("flows.html", request, title="Flows", rows=rows, rate_bar=views.rate_bar)


def page(dash: Dashboard, request: Request) -> Response:
    st = dash.store
    name = request.path_params["flow"]
    if name not in st.flows():
        return dash.not_found(
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
        has_topology=records.topology(st, name) is not None,
    )
