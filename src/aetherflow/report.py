"""``aetherflow show JOB --html report.html``: one self-contained page (no network needed).

The flow graph is drawn as inline SVG in layers (longest path from a source), and the
node runs as a Gantt-style timeline with one lane per thread. The records are embedded
as JSON too, for scripts.
"""

from __future__ import annotations

import html
import json

from .graph import Graph
from .store.records import JobRecord, NodeRunRecord

_COLORS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "skipped": "#9e9e9e",
    "suspended": "#f9a825",
    "running": "#1565c0",
    "pending": "#bdbdbd",
}


def html_report(
    job: JobRecord, runs: list[NodeRunRecord], graph: Graph | None, *, stored_target: str | None = None
) -> str:
    """The report page; without ``graph`` it says how to have the graph drawn (``--target``)."""
    data = {
        "job": {"id": job.id, "flow": job.flow, "status": job.status.value, "error": job.error},
        "runs": [
            {
                "node": r.node,
                "status": r.status.value,
                "thread": r.thread,
                "iteration": r.iteration,
                "attempt": r.attempt,
                "item": r.item,
                "start": r.started_at.timestamp(),
                "end": (r.finished_at or r.started_at).timestamp(),
            }
            for r in runs
        ],
    }
    last_status = {r.node: r.status.value for r in runs}
    picture = _graph_svg(graph, last_status) if graph is not None else _no_graph(stored_target)
    title = f"AetherFlow job {job.id} — {job.flow}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} h1{{font-size:1.3em}} .status{{font-weight:bold}}
svg text{{font-size:12px;font-family:system-ui,sans-serif}} table{{border-collapse:collapse}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Status: <span class="status" style="color:{_COLORS.get(job.status.value, "#222")}">{job.status.value}</span>
{("— " + html.escape(job.error)) if job.error else ""}</p>
<h2>Flow</h2>
{picture}
<h2>Timeline</h2>
{_timeline_svg(runs)}
<h2>Node runs</h2>
{_table(runs)}
<script type="application/json" id="aetherflow-data">{script_json(data)}</script>
</body></html>
"""


def script_json(data: object) -> str:
    """JSON to embed in a ``<script type="application/json">``: the text scripts read is the JSON.

    HTML-escaping would hand scripts ``&lt;`` instead of ``<``; inside a script element only
    ``</script>`` (and ``<!--``) matter, so every ``<`` is written as the JSON escape ``\u003c``.
    """
    return json.dumps(data).replace("<", "\\u003c")


def _no_graph(stored_target: str | None) -> str:
    hint = f" (the store says it was run from {html.escape(stored_target)})" if stored_target else ""
    return f"<p>(graph omitted: a report never imports code named in a store{hint}; pass <code>--target path/to/file.py:flow</code> to draw it)</p>"


def _layers(graph: Graph) -> dict[str, int]:
    """Depth of each vertex: the longest forward path from a source (loops drawn upwards)."""
    depth: dict[str, int] = {}
    for v in graph.in_order():
        depth[v.name] = 1 + max((depth[p] for p in v.preds), default=-1)
    return depth


def _graph_svg(graph: Graph, status: dict[str, str]) -> str:
    depth = _layers(graph)
    rows: dict[int, list[str]] = {}
    for name, d in depth.items():
        rows.setdefault(d, []).append(name)
    pos = {name: (20 + i * 170, 20 + d * 70) for d, names in rows.items() for i, name in enumerate(names)}
    width = 40 + 170 * max((len(n) for n in rows.values()), default=1)
    height = 40 + 70 * (max(rows, default=0) + 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>',
    ]
    from .viz import _edges

    for a, b, label in _edges(graph.spec):
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(
            f'<line x1="{x1 + 70}" y1="{y1 + 30}" x2="{x2 + 70}" y2="{y2}" stroke="#555" marker-end="url(#arrow)"/>'
        )
        if label:
            parts.append(f'<text x="{(x1 + x2) / 2 + 74}" y="{(y1 + y2) / 2 + 18}">{html.escape(label)}</text>')
    for name, (x, y) in pos.items():
        color = _COLORS.get(status.get(name, "pending"), "#bdbdbd")
        parts.append(
            f'<g class="node" data-node="{html.escape(name)}"><rect x="{x}" y="{y}" width="140" height="30" rx="6" fill="{color}"/>'
            f'<text x="{x + 70}" y="{y + 19}" fill="#fff" text-anchor="middle">{html.escape(name)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _timeline_svg(runs: list[NodeRunRecord]) -> str:
    if not runs:
        return "<p>(no node runs)</p>"
    start = min(r.started_at.timestamp() for r in runs)
    end = max((r.finished_at or r.started_at).timestamp() for r in runs)
    span = max(end - start, 1e-6)
    lanes = sorted({r.thread for r in runs})
    width, left = 900, 160
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + left + 20}" height="{40 + 26 * len(lanes)}" class="timeline">'
    ]
    for i, lane in enumerate(lanes):
        parts.append(f'<text x="4" y="{34 + 26 * i}">{html.escape(lane)}</text>')
    for r in runs:
        row = lanes.index(r.thread)
        x = left + (r.started_at.timestamp() - start) / span * width
        w = max(2.0, ((r.finished_at or r.started_at).timestamp() - r.started_at.timestamp()) / span * width)
        tip = f"{r.node} #{r.iteration} try {r.attempt}: {r.status.value}"
        parts.append(
            f'<rect class="run" data-node="{html.escape(r.node)}" x="{x:.1f}" y="{20 + 26 * row}" width="{w:.1f}" height="20" fill="{_COLORS.get(r.status.value, "#888")}"><title>{html.escape(tip)}</title></rect>'
        )
    parts.append(
        f'<text x="{left}" y="{34 + 26 * len(lanes)}">0 s</text><text x="{left + width - 60}" y="{34 + 26 * len(lanes)}">{span:.3f} s</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _table(runs: list[NodeRunRecord]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.node)}</td><td>{r.status.value}</td><td>{r.iteration}</td><td>{r.attempt}</td><td>{html.escape(r.thread)}</td>"
        f"<td>{_ms(r)}</td><td>{html.escape(r.error or '')}</td></tr>"
        for r in runs
    )
    return f"<table><tr><th>node</th><th>status</th><th>iteration</th><th>attempt</th><th>thread</th><th>ms</th><th>error</th></tr>{rows}</table>"


def _ms(r: NodeRunRecord) -> str:
    if r.finished_at is None:
        return ""
    return f"{(r.finished_at - r.started_at).total_seconds() * 1000:.2f}"
