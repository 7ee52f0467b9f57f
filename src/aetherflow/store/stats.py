"""`store.stats(flow)`: counts, success rate and per-node latency percentiles, for every store."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from .records import FlowStats, NodeStats, percentile


def flow_stats(flow: str, job_statuses: Iterable[str], runs: Iterable[tuple[str, str, float]]) -> FlowStats:
    """Summarise job statuses and ``(node, status, seconds)`` runs of one flow."""
    counts = Counter(job_statuses)
    finished = counts["completed"] + counts["failed"] + counts["cancelled"]
    durations: dict[str, list[float]] = defaultdict(list)
    failed: Counter[str] = Counter()
    for node, status, seconds in runs:
        durations[node].append(seconds)
        if status == "failed":
            failed[node] += 1
    nodes = {}
    for node, values in durations.items():
        values.sort()
        nodes[node] = NodeStats(len(values), failed[node], percentile(values, 0.5), percentile(values, 0.95))
    rate = counts["completed"] / finished if finished else 0.0
    return FlowStats(flow, dict(counts), rate, nodes)
