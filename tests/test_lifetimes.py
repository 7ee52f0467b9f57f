"""The lifetime rule: no provider depends on a shorter-lived one (lifetimes.py)."""

from __future__ import annotations

import pytest

from aetherflow import BaseFlowContext, FlowDefinitionError, Worker, node, providers


def test_longer_lived_provider_may_not_depend_on_shorter_lived() -> None:
    class Bad(BaseFlowContext):
        per_job = providers.JobScoped(list)
        db = providers.WorkerScoped(dict, items=per_job)

    @node
    def n(db: dict) -> None:
        return None

    with Worker(Bad, threads=1) as w, pytest.raises(FlowDefinitionError, match="depends on 'per_job'"):
        w.submit(n)
