"""The public API is what `aetherflow/__init__.py` exports, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import aetherflow

DESIGN_NAMES = {
    "node",
    "Node",
    "Flow",
    "Worker",
    "Job",
    "BaseFlowContext",
    "providers",
    "ExecutionContext",
    "current_execution",
    "locked",
    "load_context",
    "open_store",
    "JobStatus",
    "NodeStatus",
    "Suspend",
    "AetherFlowError",
    "FlowDefinitionError",
    "MissingInputError",
    "NodeError",
    "NodeInputError",
    "NodeOutputError",
    "NodeTimeoutError",
    "StateConflictError",
    "LoopLimitError",
    "StoreError",
}


def test_all_lists_every_public_name_and_only_those() -> None:
    for name in aetherflow.__all__:  # each is imported on first use: make them all be there
        getattr(aetherflow, name)
    public = {name for name in vars(aetherflow) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(aetherflow, name)).__name__ == "module"} - {"providers"}
    modules |= {"annotations", "TYPE_CHECKING"}  # from __future__, and the guard of the imports type checkers see
    assert set(aetherflow.__all__) == public - modules
    assert set(aetherflow.__all__) >= DESIGN_NAMES


def test_import_is_lazy_and_a_misspelt_name_is_an_attribute_error() -> None:
    code = "import sys, aetherflow; print('aetherflow.worker' in sys.modules, 'pydantic' in sys.modules, sorted(dir(aetherflow)) == sorted(aetherflow.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"]
    with pytest.raises(AttributeError, match="Wroker"):
        aetherflow.Wroker  # noqa: B018


def test_import_does_not_pull_psycopg_or_dask() -> None:
    code = "import sys, aetherflow; print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'dask', 'distributed')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("aetherflow").joinpath("py.typed").is_file()


def test_statuses_compare_as_strings() -> None:
    assert aetherflow.JobStatus.COMPLETED == "completed"
    assert str(aetherflow.NodeStatus.SKIPPED) == "skipped"


def test_statuses_hash_as_their_strings() -> None:
    """Equal objects hash alike: a status finds its string in a set or dict, and back."""
    assert {"completed": 1}[aetherflow.JobStatus.COMPLETED] == 1
    assert {aetherflow.NodeStatus.SKIPPED: 1}["skipped"] == 1
    assert aetherflow.JobStatus.COMPLETED.finished and not aetherflow.JobStatus.SUSPENDED.finished
