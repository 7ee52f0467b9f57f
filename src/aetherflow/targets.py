"""Finding a flow from a command-line target: ``path/to/file.py:flow`` or ``package.module:flow``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import AetherFlowError, closest
from .flow import Flow
from .node import Node


class TargetError(AetherFlowError):
    """A command-line target names no flow; the message says what exists."""


def load_target(target: str) -> Flow:
    """The flow a target names.

    >>> load_target("examples/demo.py:flow")
    """
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise TargetError(f"Target {target!r} should look like 'path/to/file.py:flow' or 'package.module:flow'.")
    module = _load_module(where)
    found = getattr(module, attr, None)
    if isinstance(found, Node):
        return found.as_flow()
    if isinstance(found, Flow):
        return found
    flows = sorted(
        name for name, value in vars(module).items() if isinstance(value, (Flow, Node)) and not name.startswith("_")
    )
    hint = closest(attr, flows)
    what = "is not a flow" if found is not None else "does not exist"
    raise TargetError(
        f"'{attr}' in {where} {what}."
        + (f" Did you mean '{hint[0]}'?" if hint else "")
        + (f" Flows there: {', '.join(flows)}." if flows else " It defines no flows or nodes.")
    )


def _load_module(where: str) -> ModuleType:
    if where.endswith(".py") or os.sep in where or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise TargetError(f"No file {where} (looked in {Path.cwd()}).")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # so the file can import its neighbours
        name = f"aetherflow_target_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise TargetError(f"Cannot load {where} as Python.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise TargetError(f"No module named {where!r} ({exc}); give a file path or an importable module.") from None


def parse_value(text: str) -> Any:
    """``--input k=v`` values: JSON when they parse as JSON (numbers, true, lists), else text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text
