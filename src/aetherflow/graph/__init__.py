"""From building steps to a validated graph, and from a graph to a per-context plan.

One room per stage, each reading only the ones before it:

- `spec`: `GraphSpec`, what the user built (vertices, explicit edges, branches).
- `topology`: `Topology`, derived from a spec: the edges implied by parameter names,
  loops (branch edges back upstream) told from forward edges, a topological order;
  per-vertex lists for the hot path, and a `Vertex` view by name for other readers.
- `plan`: `Plan`, where each parameter of each vertex comes from for a set of provider
  names (`BindingKind`), compiled once per (flow, context shape).
- `validate`: `GraphValidator`, every problem at once: the structure, then
  what a context's provider names and the plan bound for them reveal.

- `compiled`: `Graph`, a topology that passed validation, with its plans.

The scheduler's own arrays (readiness counters' start, chain links, loop re-arming)
live in `scheduler.Schedule`, derived once per graph.
"""

from __future__ import annotations

from .compiled import Graph
from .plan import (
    B_ANSWER,
    B_EXECUTION,
    B_INPUT,
    B_ITEM,
    B_JOB_STATE,
    B_JOIN,
    B_NODE,
    B_NODE_STATE,
    B_PROVIDER,
    B_WORKER_STATE,
    BUILTINS,
    Binding,
    BindingKind,
    InputSpec,
    Plan,
    VertexPlan,
    job_inputs,
)
from .spec import GraphSpec, VertexSpec, data_sources
from .topology import Topology, Vertex
from .validate import GraphValidator

__all__ = [
    "BUILTINS",
    "B_ANSWER",
    "B_EXECUTION",
    "B_INPUT",
    "B_ITEM",
    "B_JOB_STATE",
    "B_JOIN",
    "B_NODE",
    "B_NODE_STATE",
    "B_PROVIDER",
    "B_WORKER_STATE",
    "Binding",
    "BindingKind",
    "Graph",
    "GraphSpec",
    "GraphValidator",
    "InputSpec",
    "Plan",
    "Topology",
    "Vertex",
    "VertexPlan",
    "VertexSpec",
    "data_sources",
    "job_inputs",
]
