"""Pictures of a flow: Mermaid and Graphviz DOT text."""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import short_repr
from .graph import Graph, GraphSpec, data_sources


def _edges(spec: GraphSpec) -> list[tuple[str, str, str]]:
    """``(src, dst, label)``: plain edges unlabelled, branch edges labelled with their value."""
    edges: dict[tuple[str, str], str] = {}
    for v in spec.vertices.values():
        for p in (*v.preds, *data_sources(v, spec.vertices)):
            edges.setdefault((p, v.name), "map" if v.mapped else "")
        for value, target in (v.branches or {}).items():
            edges[(v.name, target)] = short_repr(value, 40)  # never raises, even for a huge int
        if v.default:
            edges[(v.name, v.default)] = "default"
    return [(a, b, label) for (a, b), label in edges.items()]


def _id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _label(text: str) -> str:
    """Text inside a Mermaid ``"..."`` label: a quote would end it early."""
    return text.replace('"', "#quot;")


def _quoted(text: str) -> str:
    """A DOT ``"..."`` string: backslashes and quotes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_mermaid(spec: GraphSpec) -> str:
    lines = ["flowchart TD"]
    for name, v in spec.vertices.items():
        shape = ("{", "}") if v.branches else ("[[", "]]") if v.mapped else ("[", "]")
        lines.append(f'    {_id(name)}{shape[0]}"{_label(name)}"{shape[1]}')
    for a, b, label in _edges(spec):
        arrow = f' -->|"{_label(label)}"| ' if label else " --> "
        lines.append(f"    {_id(a)}{arrow}{_id(b)}")
    return "\n".join(lines) + "\n"


def to_dot(spec: GraphSpec, name: str = "flow") -> str:
    lines = [f"digraph {_quoted(name)} {{", "    rankdir=TB;", "    node [shape=box];"]
    for vname, v in spec.vertices.items():
        shape = "diamond" if v.branches else "box3d" if v.mapped else "box"
        lines.append(f"    {_quoted(vname)} [shape={shape}];")
    for a, b, label in _edges(spec):
        attr = f" [label={_quoted(label)}]" if label else ""
        lines.append(f"    {_quoted(a)} -> {_quoted(b)}{attr};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def topology(graph: Graph) -> dict[str, Any]:
    """A flow's shape as data, not code (what the store keeps so the dashboard can draw any job).

    ``{"vertices": [{"name", "mapped", "switch"}], "edges": [{"src", "dst", "label", "loop"}]}``;
    ``loop`` marks a branch edge back upstream, ``label`` is a branch value's repr, ``"default"`` or ``"map"``.
    """
    back = {(v.name, t) for v in graph.vertices for t in v.loops_to}
    return {
        "vertices": [{"name": v.name, "mapped": v.mapped, "switch": v.switch} for v in graph.vertices],
        "edges": [{"src": a, "dst": b, "label": label, "loop": (a, b) in back} for a, b, label in _edges(graph.spec)],
    }


def topology_json(graph: Graph) -> str:
    return json.dumps(topology(graph), separators=(",", ":"))
