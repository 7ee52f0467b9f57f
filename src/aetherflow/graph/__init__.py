"""From building steps to a validated graph, and from a graph to a per-context plan.

`GraphSpec` records what the user built (vertices, explicit edges, branches). `Graph`
adds the edges implied by parameter names, tells loops (branch edges back upstream)
from forward edges, and checks the whole thing at once. `Graph.bind` then decides, for
a given set of provider names, where each parameter of each vertex comes from: that
`Plan` is what the scheduler executes, compiled once per (flow, context shape).
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
    InputSpec,
    Plan,
    VertexPlan,
    job_inputs,
)
from .spec import GraphSpec, VertexSpec, _data_sources

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
    "Graph",
    "GraphSpec",
    "InputSpec",
    "Plan",
    "VertexPlan",
    "VertexSpec",
    "_data_sources",
    "job_inputs",
]
