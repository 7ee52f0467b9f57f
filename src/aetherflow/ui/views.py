"""What the dashboard's pages show, computed from store records: no web framework here.

The SVG pictures (flow graph, Gantt timeline, charts) are built as `Markup` with every
user string escaped, so templates can insert them as they are.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from ..store.records import EventRecord, JobRecord, NodeRunRecord, StateRecord

COLORS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "skipped": "#9e9e9e",
    "suspended": "#f9a825",
    "running": "#1565c0",
    "pending": "#bdbdbd",
    "cancelled": "#8e24aa",
    "not run": "#e0e0e0",
}
STATUSES = ("pending", "running", "completed", "failed", "suspended", "cancelled")
TRUNCATE = 2000  # characters of a value shown inline; the whole value is one click away


def color(status: str) -> str:
    return COLORS.get(status, "#757575")


# -- values --------------------------------------------------------------------------------


def to_text(value: Any) -> str:
    """A stored value as readable JSON (stored values are JSON already; anything else by repr)."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


@dataclass
class Shown:
    text: str
    truncated: bool
    size: int


def shown(value: Any, limit: int = TRUNCATE) -> Shown:
    text = to_text(value)
    if len(text) <= limit:
        return Shown(text, False, len(text))
    return Shown(text[:limit] + " …", True, len(text))


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


# -- per-vertex status -----------------------------------------------------------------------


@dataclass
class VertexView:
    name: str
    status: str = "not run"
    runs: int = 0
    iterations: int = 0
    attempts: int = 0  # the most attempts any one run needed
    items: int = 0  # mapped: distinct items run
    items_done: int = 0
    items_failed: list[int] = field(default_factory=list)
    mapped: bool = False
    switch: bool = False

    @property
    def summary(self) -> str:
        parts = []
        if self.items:
            parts.append(f"{self.items_done}/{self.items} items")
            if self.items_failed:
                parts.append(f"{len(self.items_failed)} failed")
        if self.iterations > 1:
            parts.append(f"×{self.iterations}")
        if self.attempts > 1:
            parts.append(f"{self.attempts} tries")
        return ", ".join(parts)


def vertex_views(
    names: Iterable[str], runs: Sequence[NodeRunRecord], job: JobRecord, topology: dict[str, Any] | None = None
) -> dict[str, VertexView]:
    """Each vertex's status in a job: a mapped vertex with one failed item is failed, not green."""
    views = {n: VertexView(n) for n in names}
    flags = {v["name"]: v for v in (topology or {}).get("vertices", [])}
    by_node: dict[str, list[NodeRunRecord]] = defaultdict(list)
    for r in runs:
        by_node[r.node].append(r)
        views.setdefault(r.node, VertexView(r.node))
    for name, view in views.items():
        view.mapped = bool(flags.get(name, {}).get("mapped"))
        view.switch = bool(flags.get(name, {}).get("switch"))
        rs = by_node.get(name, [])
        if not rs:
            view.status = "pending" if job.status.value in ("running", "pending") else "not run"
            continue
        view.runs = len(rs)
        view.iterations = max(r.iteration for r in rs)
        view.attempts = max(r.attempt for r in rs)
        last_iteration = [r for r in rs if r.iteration == view.iterations]
        # the last attempt of each (item) run in the last iteration decides
        final: dict[int | None, NodeRunRecord] = {}
        for r in last_iteration:
            if r.item not in final or r.attempt >= final[r.item].attempt:
                final[r.item] = r
        items = {k: r for k, r in final.items() if k is not None}
        if items:
            view.mapped = True
            view.items = len(items)
            view.items_done = sum(1 for r in items.values() if r.status.value == "completed")
            view.items_failed = sorted(k for k, r in items.items() if r.status.value == "failed")
        statuses = {r.status.value for r in final.values()}
        for status in ("failed", "suspended", "running", "skipped", "completed"):
            if status in statuses:
                view.status = status
                break
        else:
            view.status = next(iter(statuses))
    return views


# -- the flow graph ----------------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 44, 40, 56, 36
LANE = 40  # room on the right for each loop's curve
Edge = dict[str, Any]  # as recorded with the flow's topology: src, dst, label, loop


def graph_svg(topology: dict[str, Any] | None, views: dict[str, VertexView], job_id: str = "") -> Markup:
    """The flow's graph in layers (longest forward path), vertices coloured by status.

    Loop edges (a branch back upstream) are drawn as curves on the right, each with its
    label on its own curve; branch labels sit on their edge, on a white ground. Labels
    are drawn last, over every edge.
    """
    names, edges = _graph_of(topology, views)
    loops = [e for e in edges if _is_loop(e)]
    layout = _Layout.of(names, [e for e in edges if not _is_loop(e)])
    width = PAD * 2 + layout.widest * (BOX_W + GAP_X) + LANE * len(loops)
    height = PAD * 2 + layout.layers * (BOX_H + GAP_Y) - GAP_Y
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="flow graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>',
    ]
    drawn = [_forward_edge(e, layout) for e in edges if not _is_loop(e) and layout.has(e)]
    drawn += [_loop_edge(e, layout, lane) for lane, e in enumerate(loops) if layout.has(e)]
    out.extend(path for path, _ in drawn)
    out.extend(_vertex(n, x, y, views.get(n, VertexView(n))) for n, (x, y) in layout.pos.items())
    out.extend(label for _, label in drawn if label)
    out.append("</svg>")
    return Markup("\n".join(out))


def _graph_of(topology: dict[str, Any] | None, views: dict[str, VertexView]) -> tuple[list[str], list[Edge]]:
    """The vertices to draw (the recorded ones, then any other a run names) and the recorded edges."""
    names = [v["name"] for v in topology["vertices"]] if topology else list(views)
    names += [n for n in views if n not in names]
    return names, topology["edges"] if topology else []


def _is_loop(e: Edge) -> bool:
    """A branch back upstream, or a vertex's edge to itself: drawn on the right, outside the layers."""
    return bool(e["loop"] or e["src"] == e["dst"])


@dataclass
class _Layout:
    """Where each vertex sits: its layer is its longest forward path from a source; each layer centred."""

    depth: dict[str, int]
    pos: dict[str, tuple[float, float]]  # top-left corner of each vertex's box
    widest: int  # vertices in the widest layer
    layers: int

    @classmethod
    def of(cls, names: list[str], forward: list[Edge]) -> _Layout:
        depth = _depths(names, [(e["src"], e["dst"]) for e in forward])
        rows: dict[int, list[str]] = defaultdict(list)
        for n in names:
            rows[depth[n]].append(n)
        widest = max((len(r) for r in rows.values()), default=1)
        pos: dict[str, tuple[float, float]] = {}
        for d, row in rows.items():
            offset = (widest - len(row)) * (BOX_W + GAP_X) / 2
            for i, n in enumerate(row):
                pos[n] = (PAD + offset + i * (BOX_W + GAP_X), PAD + d * (BOX_H + GAP_Y))
        return cls(depth, pos, widest, max(rows, default=0) + 1)

    def has(self, e: Edge) -> bool:
        """Whether both ends of ``e`` are drawn (an edge may name a vertex the topology lacks)."""
        return e["src"] in self.pos and e["dst"] in self.pos

    @property
    def right(self) -> float:
        """Where the widest layer ends: loop lanes start past it."""
        return PAD + self.widest * (BOX_W + GAP_X)


def _depths(names: list[str], forward: list[tuple[str, str]]) -> dict[str, int]:
    """Each vertex's longest forward path from a source (forward edges form a DAG, so this settles)."""
    depth = {n: 0 for n in names}
    for _ in range(len(names)):
        changed = False
        for a, b in forward:
            if a in depth and b in depth and depth[b] < depth[a] + 1:
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    return depth


def _forward_edge(e: Edge, layout: _Layout) -> tuple[str, str]:
    """The edge's path and label (or ""): down to the next layer straight; past a layer, bowed around the vertices between, on the left."""
    a, b, label = e["src"], e["dst"], e["label"]
    (x1, y1), (x2, y2) = layout.pos[a], layout.pos[b]
    sx, sy, tx, ty = x1 + BOX_W / 2, y1 + BOX_H, x2 + BOX_W / 2, y2
    dash = ' stroke-dasharray="5,3"' if label == "map" else ""
    if layout.depth[b] - layout.depth[a] > 1:
        bow = min(x1, x2) - 24
        route = f"M{x1:.1f},{y1 + BOX_H / 2:.1f} C{bow:.1f},{y1 + BOX_H / 2:.1f} {bow:.1f},{ty + BOX_H / 2:.1f} {x2:.1f},{ty + BOX_H / 2:.1f}"
        lx, ly = bow + 6, (y1 + ty + BOX_H) / 2
    else:
        route = f"M{sx:.1f},{sy:.1f} L{tx:.1f},{ty:.1f}"
        lx, ly = sx + (tx - sx) * 0.55, sy + (ty - sy) * 0.55
    path = f'<path class="edge" d="{route}" stroke="#555" fill="none"{dash} marker-end="url(#arrow)"/>'
    return path, _label(lx, ly, label) if label else ""


def _loop_edge(e: Edge, layout: _Layout, lane: int) -> tuple[str, str]:
    """The loop's path and label (or ""): a curve from the right of one box to the right of the other, in its own lane."""
    (x1, y1), (x2, y2) = layout.pos[e["src"]], layout.pos[e["dst"]]
    x = layout.right + 20 + LANE * lane
    sy, ty = y1 + BOX_H / 2, y2 + BOX_H / 2
    path = (
        f'<path class="edge loop" d="M{x1 + BOX_W:.1f},{sy:.1f} C{x:.1f},{sy:.1f} {x:.1f},{ty:.1f} {x2 + BOX_W:.1f},{ty:.1f}" '
        f'stroke="#6a1b9a" fill="none" stroke-dasharray="6,3" marker-end="url(#arrow)"/>'
    )
    label = e["label"]
    return path, _label(x1 + BOX_W + (x - x1 - BOX_W) * 0.75, (sy + ty) / 2, label, "#6a1b9a") if label else ""


def _vertex(n: str, x: float, y: float, v: VertexView) -> str:
    """A vertex's box, linked to its row below the graph: a shadow box if mapped, a bold edge if a switch."""
    fill = color(v.status)
    text_fill = "#222" if v.status in ("not run", "pending", "suspended") else "#fff"
    shape = (
        f'<rect x="{x + 4}" y="{y + 4}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" opacity="0.45"/>'
        if v.mapped
        else ""
    )
    stroke = ' stroke="#222" stroke-width="2"' if v.switch else ""
    return (
        f'<a href="#node-{escape(n)}"><g class="vertex" data-node="{escape(n)}" data-status="{escape(v.status)}"><title>{escape(_tip(n, v))}</title>{shape}'
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="{4 if v.switch else 6}" fill="{fill}"{stroke}/>'
        f'<text x="{x + BOX_W / 2}" y="{y + 18}" fill="{text_fill}" text-anchor="middle" font-weight="bold">{escape(_short(n, 22))}</text>'
        f'<text x="{x + BOX_W / 2}" y="{y + 34}" fill="{text_fill}" text-anchor="middle" font-size="11">{escape(v.status + (" · " + v.summary if v.summary else ""))}</text></g></a>'
    )


def _tip(n: str, v: VertexView) -> str:
    return (
        f"{n}: {v.status}"
        + (f" ({v.summary})" if v.summary else "")
        + (f"; failed items: {', '.join(map(str, v.items_failed[:20]))}" if v.items_failed else "")
    )


def _label(x: float, y: float, text: str, fill: str = "#333") -> str:
    t = _short(text, 18)
    w = 7 * len(t) + 8
    return (
        f'<g class="edge-label"><rect x="{x - w / 2:.1f}" y="{y - 9:.1f}" width="{w}" height="16" rx="3" fill="#fff" stroke="#ccc"/>'
        f'<text x="{x:.1f}" y="{y + 3:.1f}" text-anchor="middle" font-size="11" fill="{fill}">{escape(t)}</text></g>'
    )


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# -- the Gantt timeline -----------------------------------------------------------------------


def gantt_svg(runs: Sequence[NodeRunRecord], worker: str = "") -> Markup:
    """One lane per thread, a labelled bar per node run, details on hover."""
    if not runs:
        return Markup('<p class="muted">No node runs recorded yet.</p>')
    start = min(r.started_at.timestamp() for r in runs)
    end = max((r.finished_at or r.started_at).timestamp() for r in runs)
    span = max(end - start, 1e-6)
    lanes = sorted({r.thread or "?" for r in runs})
    left, width, lane_h = 190, 860, 24
    height = 40 + lane_h * len(lanes)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{left + width + 20}" height="{height}" viewBox="0 0 {left + width + 20} {height}" role="img" aria-label="timeline">'
    ]
    for i, lane in enumerate(lanes):
        y = 10 + lane_h * i
        out.append(
            f'<rect x="0" y="{y}" width="{left + width}" height="{lane_h}" fill="{"#fafafa" if i % 2 else "#f0f0f0"}"/>'
        )
        out.append(
            f'<text x="4" y="{y + 16}" font-size="11"><title>{escape(lane)}</title>{escape(_short(lane, 30))}</text>'
        )
    for r in runs:
        row = lanes.index(r.thread or "?")
        t0 = r.started_at.timestamp()
        t1 = (r.finished_at or r.started_at).timestamp()
        x = left + (t0 - start) / span * width
        w = max(2.0, (t1 - t0) / span * width)
        y = 10 + lane_h * row + 3
        label = r.node + (f"[{r.item}]" if r.item is not None else "")
        tip = (
            f"{label} — iteration {r.iteration}, attempt {r.attempt}: {r.status.value}, {duration(r.started_at, r.finished_at)}"
            f" (+{(t0 - start) * 1000:.1f} ms)" + (f"\n{r.error}" if r.error else "")
        )
        out.append(
            f'<g class="bar" data-node="{escape(r.node)}"><title>{escape(tip)}</title>'
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 6}" rx="2" fill="{color(r.status.value)}"/>'
        )
        if w > 40:
            out.append(
                f'<text x="{x + 3:.1f}" y="{y + 13}" font-size="10" fill="#fff">{escape(_short(label, int(w / 6)))}</text>'
            )
        out.append("</g>")
    out.append(
        f'<text x="{left}" y="{height - 6}" font-size="11">0</text>'
        f'<text x="{left + width}" y="{height - 6}" font-size="11" text-anchor="end">{span * 1000:.3g} ms</text>'
    )
    out.append("</svg>")
    return Markup("\n".join(out))


# -- state timeline ------------------------------------------------------------------------------


@dataclass
class Change:
    key: str
    before: Shown | None
    after: Shown | None  # None: deleted
    version: int


@dataclass
class StateCommit:
    ts: datetime
    scope: str
    namespace: str
    node: str | None
    changes: list[Change]


def state_commits(history: Sequence[StateRecord], events: Sequence[EventRecord]) -> list[StateCommit]:
    """State writes grouped per commit, each key shown before → after."""
    by_ts = {(e.ts, e.node) for e in events if e.type == "state_committed"}
    node_at = {ts: node for ts, node in by_ts}
    last: dict[tuple[str, str, str], Any] = {}
    commits: list[StateCommit] = []
    for s in history:
        where = (s.scope, s.namespace, s.key)
        c = commits[-1] if commits else None
        if c is None or c.ts != s.ts or c.scope != s.scope or c.namespace != s.namespace:
            c = StateCommit(s.ts, s.scope, s.namespace, node_at.get(s.ts), [])
            commits.append(c)
        before = shown(last[where], 300) if where in last else None
        after = None if s.deleted else shown(s.value, 300)
        c.changes.append(Change(s.key, before, after, s.version))
        if s.deleted:
            last.pop(where, None)
        else:
            last[where] = s.value
    return commits


# -- charts ------------------------------------------------------------------------------------


def bars_svg(
    rows: Sequence[tuple[str, float, float]], unit: str = "ms", a_label: str = "p50", b_label: str = "p95"
) -> Markup:
    """Horizontal paired bars per row (p50 and p95 of each node)."""
    if not rows:
        return Markup('<p class="muted">No node runs yet.</p>')
    top = max(max(a, b) for _, a, b in rows) or 1.0
    left, width, row_h = 170, 520, 30
    height = 30 + row_h * len(rows)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{left + width + 110}" height="{height}" role="img" aria-label="durations">',
        f'<rect x="{left}" y="4" width="10" height="10" fill="#90caf9"/><text x="{left + 14}" y="13" font-size="11">{a_label}</text>'
        f'<rect x="{left + 60}" y="4" width="10" height="10" fill="#1565c0"/><text x="{left + 74}" y="13" font-size="11">{b_label}</text>',
    ]
    for i, (name, a, b) in enumerate(rows):
        y = 24 + row_h * i
        out.append(f'<text x="4" y="{y + 15}" font-size="12">{escape(_short(name, 24))}</text>')
        out.append(
            f'<rect x="{left}" y="{y}" width="{max(1.0, b / top * width):.1f}" height="11" fill="#1565c0"><title>{escape(name)} {b_label} {b:.2f} {unit}</title></rect>'
        )
        out.append(
            f'<rect x="{left}" y="{y + 12}" width="{max(1.0, a / top * width):.1f}" height="11" fill="#90caf9"><title>{escape(name)} {a_label} {a:.2f} {unit}</title></rect>'
        )
        out.append(
            f'<text x="{left + max(1.0, b / top * width) + 4:.1f}" y="{y + 16}" font-size="11">{a:.3g} / {b:.3g} {unit}</text>'
        )
    out.append("</svg>")
    return Markup("\n".join(out))


def jobs_over_time_svg(jobs: Sequence[JobRecord], buckets: int = 24) -> Markup:
    """Stacked columns of jobs per time bucket, by final status."""
    if not jobs:
        return Markup('<p class="muted">No jobs yet.</p>')
    times = [j.created_at.timestamp() for j in jobs]
    lo, hi = min(times), max(times)
    step = max((hi - lo) / buckets, 1e-6)
    counts: list[dict[str, int]] = [defaultdict(int) for _ in range(buckets)]
    for j, t in zip(jobs, times, strict=True):
        counts[min(buckets - 1, int((t - lo) / step))][j.status.value] += 1
    top = max(sum(c.values()) for c in counts) or 1
    left, width, height = 30, 600, 140
    col = width / buckets
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{left + width + 10}" height="{height + 40}" role="img" aria-label="jobs over time">',
        f'<text x="0" y="14" font-size="11">{top}</text><line x1="{left}" y1="{height + 10}" x2="{left + width}" y2="{height + 10}" stroke="#999"/>',
    ]
    for i, c in enumerate(counts):
        y = height + 10.0
        for status in STATUSES:
            n = c.get(status, 0)
            if not n:
                continue
            h = n / top * height
            y -= h
            when = datetime.fromtimestamp(lo + i * step).astimezone()
            out.append(
                f'<rect x="{left + i * col + 1:.1f}" y="{y:.1f}" width="{col - 2:.1f}" height="{h:.1f}" fill="{color(status)}">'
                f"<title>{n} {status} from {when:%Y-%m-%d %H:%M:%S}</title></rect>"
            )
    first = datetime.fromtimestamp(lo).astimezone()
    last = datetime.fromtimestamp(hi).astimezone()
    out.append(
        f'<text x="{left}" y="{height + 28}" font-size="11">{first:%m-%d %H:%M}</text>'
        f'<text x="{left + width}" y="{height + 28}" font-size="11" text-anchor="end">{last:%m-%d %H:%M}</text>'
    )
    out.append("</svg>")
    return Markup("\n".join(out))


def rate_bar(rate: float) -> Markup:
    pct = 0.0 if math.isnan(rate) else max(0.0, min(1.0, rate)) * 100
    return Markup(f'<span class="rate"><span style="width:{pct:.0f}%"></span></span> {pct:.0f}%')
