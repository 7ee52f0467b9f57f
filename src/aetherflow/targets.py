"""What a command line names: a flow (``path/to/file.py:flow`` or ``package.module:flow``)
and a context (``--context module:Class``, ``path/to/file.py:Class`` or a TOML profile).

`run` records where both are as paths that hold from any folder (`recorded`), so
`resume` and `recover` started elsewhere find the same code.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import AetherFlowError, closest
from .flow import Flow
from .missing_context import contexts_in, explain, is_context, modules_of
from .node import Node

if TYPE_CHECKING:
    from collections.abc import Mapping

CONTEXT_FORMS = "Give path/to/file.py:Class, package.module:Class or a .toml profile."


class TargetError(AetherFlowError):
    """A command-line target names no flow (or no context); the message says what exists."""


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


def load_context_ref(ref: str) -> Any:
    """The context ``--context`` names: a `BaseFlowContext` subclass or instance, or a profile's instance.

    >>> load_context_ref("examples/demo.py:DemoContext")
    """
    if ref.endswith(".toml"):
        from .profiles import load_context

        return load_context(ref)
    label = f"--context {ref}"
    where, sep, attr = ref.rpartition(":")
    if not sep or not where or not attr:
        raise TargetError(f"{label}: expected module:Class, path/to/file.py:Class or a .toml profile.")
    module = _import_for(where, label)
    found = getattr(module, attr, None)
    if is_context(found):
        return found
    contexts = contexts_in(module)
    there = f" Contexts there: {', '.join(contexts)}." if contexts else " It defines no BaseFlowContext subclass."
    if found is None:
        hint = closest(attr, contexts)
        raise TargetError(
            f"{label}: '{attr}' in {where} does not exist." + (f" Did you mean '{hint[0]}'?" if hint else "") + there
        )
    kind = "a function" if callable(found) and not isinstance(found, type) else f"a {type(found).__name__}"
    if isinstance(found, type):
        kind = "a class"
    raise TargetError(f"{label}: '{attr}' in {where} is {kind}, not a BaseFlowContext subclass or instance.{there}")


def recorded(ref: str) -> str:
    """``ref`` (a target or a context) as it reads from any folder: a file by its absolute path.

    A module found in the current folder is recorded by its file too; an installed
    module, or a dotted one (its package's own imports need its name), by its name.
    """
    where, sep, attr = ref.rpartition(":")
    if ref.endswith(".toml"):
        return str(Path(ref).resolve())
    if not sep:
        return ref
    if _is_path(where):
        return f"{Path(where).resolve()}:{attr}"
    module = sys.modules.get(where)
    file = getattr(module, "__file__", None)
    if "." not in where and file and Path(file).resolve().is_relative_to(Path.cwd().resolve()):
        return f"{Path(file).resolve()}:{attr}"
    return ref


def record_run(target: str, context: str | None) -> str:
    """What `run` remembers for a flow: the target, and ``--context`` if one was given."""
    words = [recorded(target)] + (["--context", recorded(context)] if context else [])
    return shlex.join(words)


def recorded_run(text: str) -> tuple[str, str | None]:
    """``(target, context or None)`` from what `record_run` wrote (or a bare target, as older runs recorded)."""
    try:
        words = shlex.split(text)
    except ValueError:
        return text, None
    if len(words) == 3 and words[1] == "--context":
        return words[0], words[2]
    return (words[0], None) if len(words) == 1 else (text, None)


def _is_path(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where


_loaded: dict[Path, ModuleType] = {}  # a file named by both the target and --context runs once
_searched: dict[str, ModuleType] = {}  # the modules a command line named: where a missing context may be


def _load_module(where: str) -> ModuleType:
    if _is_path(where):
        path = Path(where)
        if not path.is_file():
            raise TargetError(f"No file {where} (looked in {Path.cwd()}).")
        return _exec_file(path, where)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (where == exc.name or where.startswith(exc.name + ".")):
            raise  # the module exists; something it imports does not
        raise TargetError(f"No module named {where!r} ({exc}); give a file path or an importable module.") from None
    _searched.setdefault(module.__name__, module)
    return module


def _exec_file(path: Path, where: str) -> ModuleType:
    resolved = path.resolve()
    module = _loaded.get(resolved)
    if module is not None:
        return module
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # so the file can import its neighbours
    name = f"aetherflow_target_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"Cannot load {where} as Python.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _loaded[resolved] = module
    _searched.setdefault(module.__name__, module)
    return module


def _import_for(where: str, label: str) -> ModuleType:
    """`_load_module` for ``--context``: every failure says which reference and how to fix it."""
    if _is_path(where) and not Path(where).is_file():
        raise TargetError(f"{label}: no file {where} (looked in {Path.cwd()}). {CONTEXT_FORMS}")
    try:
        return _load_module(where)
    except TargetError as exc:
        if "No module named" in str(exc):
            raise TargetError(
                f"{label}: no module named {where!r} (looked in {Path.cwd()} and the installed packages). {CONTEXT_FORMS}"
            ) from None
        raise
    except Exception as exc:  # whatever the user's module raises while importing, say so
        raise TargetError(
            f"{label}: importing {where} raised {type(exc).__name__}: {exc}. Fix the import, or install what it needs."
        ) from exc


def _where_of(module: ModuleType) -> str:
    """How a user names ``module`` on the command line: a file loaded by path by its path, else its name."""
    file = getattr(module, "__file__", None)
    if module.__name__.startswith("aetherflow_target_") and file:
        path = Path(file).resolve()
        return str(path.relative_to(Path.cwd().resolve())) if path.is_relative_to(Path.cwd().resolve()) else str(path)
    return module.__name__


def missing_context(flow: Flow, context: Any, values: Mapping[str, Any], action: str = "ran") -> str | None:
    """`missing_context.explain` for the command line: it looks in the modules the command named too."""
    modules = {m.__name__: m for m in [*_searched.values(), *modules_of(flow)]}.values()
    return explain(
        flow, context, values, modules, lambda where, name: f"pass --context {where}:{name}", _where_of, action
    )


def parse_value(text: str) -> Any:
    """``--input k=v`` values: JSON when they parse as JSON (numbers, true, lists), else text."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text
