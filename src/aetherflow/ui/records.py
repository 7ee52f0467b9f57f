"""What the pages decode from a store's records: a flow's recorded topology, each node's last output.

Both are data only: a store is never a reason to import the code it names.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import StoreError
from ..store import Store


def topology(st: Store, flow: str) -> dict[str, Any] | None:
    """The topology recorded with ``flow`` (vertices and edges), or None if there is none readable."""
    text = st.topology_of(flow)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "vertices" in data else None


def node_outputs(st: Store, job_id: str) -> dict[str, Any]:
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
