"""What a command line names: a flow (``path/to/file.py:flow`` or ``package.module:flow``)
and a context (``--context module:Class``, ``path/to/file.py:Class`` or a TOML profile).

`run` records where both are in a form that holds from any folder (`record_run`): a
file by its absolute path, a module by its name, and the folder `run` imported modules
from when they were found in its current folder (not installed), so `resume` and
`recover` started elsewhere import the same code.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import AetherFlowError, closest
from .flow import Flow
from .missing_context import contexts_in, explain, is_context, modules_of
from .node import Node

if TYPE_CHECKING:
    from collections.abc import Mapping

CONTEXT_FORMS = "Give path/to/file.py:Class, package.module:Class or a .toml profile."


class TargetError(AetherFlowError):
    """A command-line target names no flow (or no context); the message says what exists."""


def load_target(target: str, folder: str | None = None) -> Flow:
    """The flow a target names; a module named by name is imported from ``folder`` (default:
    the current folder) or the installed packages.

    >>> load_target("examples/demo.py:flow")
    """
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise TargetError(f"Target {target!r} should look like 'path/to/file.py:flow' or 'package.module:flow'.")
    module = _load_module(where, folder)
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


def load_context_ref(ref: str, folder: str | None = None) -> Any:
    """The context ``--context`` names: a `BaseFlowContext` subclass or instance, or a profile's instance.

    A module named by name (also a profile's base) is imported from ``folder`` (default: the
    current folder) or the installed packages; a profile's base also from beside the profile.

    >>> load_context_ref("examples/demo.py:DemoContext")
    """
    if ref.endswith(".toml"):
        from .profiles import load_context

        if folder is not None:
            _search_first(folder)  # before the places the profile itself adds
        return load_context(ref)
    label = f"--context {ref}"
    where, sep, attr = ref.rpartition(":")
    if not sep or not where or not attr:
        raise TargetError(f"{label}: expected module:Class, path/to/file.py:Class or a .toml profile.")
    module = _import_for(where, label, folder)
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

    A module stays named by its name (its package's own imports need that name); where it
    was found is `record_run`'s ``--folder``.
    """
    where, sep, attr = ref.rpartition(":")
    if ref.endswith(".toml"):
        return str(Path(ref).resolve())
    if sep and _is_path(where):
        return f"{Path(where).resolve()}:{attr}"
    return ref


class Recorded(NamedTuple):
    """What `run` recorded for a flow (`record_run`), read back by `recorded_run`."""

    target: str
    context: str | None  # the --context `run` was given
    folder: str | None  # where `run` imported the modules named by name from, when not installed


def record_run(target: str, context: str | None) -> str:
    """What `run` remembers for a flow, after loading both: the target, ``--context`` if one
    was given, and ``--folder`` if a module either names (or a profile's base) was imported
    from the current folder.

    >>> record_run("mypkg.flows:flow", "contexts/p.toml")  # in /srv/proj, mypkg not installed
    'mypkg.flows:flow --context /srv/proj/contexts/p.toml --folder /srv/proj'
    """
    words = [recorded(target)] + (["--context", recorded(context)] if context else [])
    here = Path.cwd().resolve()
    if any(_imported_from(name) == here for name in _modules_named(target, context)):
        words += ["--folder", str(here)]
    return shlex.join(words)


def recorded_run(text: str) -> Recorded:
    """What `record_run` wrote, read back (or a bare target, as older runs recorded)."""
    try:
        words = shlex.split(text)
    except ValueError:
        return Recorded(text, None, None)
    options = dict(zip(words[1::2], words[2::2], strict=False))
    if not words or len(words) % 2 == 0 or not set(options) <= {"--context", "--folder"}:
        return Recorded(text, None, None)  # a bare target with spaces in it
    return Recorded(words[0], options.get("--context"), options.get("--folder"))


def _modules_named(target: str, context: str | None) -> list[str]:
    """The modules ``target`` and ``context`` name by name (a profile by its base)."""
    names = []
    for ref in [target] + ([context] if context else []):
        if ref.endswith(".toml"):
            from .profiles import base_module

            names.append(base_module(ref))
            continue
        where, sep, _ = ref.rpartition(":")
        if sep and where and not _is_path(where):
            names.append(where)
    return names


def _imported_from(name: str) -> Path | None:
    """The folder of ``sys.path`` that module ``name`` was imported from (None: not imported from a file)."""
    file = getattr(sys.modules.get(name), "__file__", None)
    if not file:
        return None
    path = Path(os.path.abspath(file))
    if path.stem == "__init__":
        path = path.parent
    depth = name.count(".")
    return path.parents[depth].resolve() if depth < len(path.parents) else None


def _is_path(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where


_loaded: dict[Path, ModuleType] = {}  # a file named by both the target and --context runs once
_searched: dict[str, ModuleType] = {}  # the modules a command line named: where a missing context may be


def _load_module(where: str, folder: str | None = None) -> ModuleType:
    if _is_path(where):
        path = Path(where)
        if not path.is_file():
            raise TargetError(f"No file {where} (looked in {Path.cwd()}).")
        return _exec_file(path, where)
    home = folder or os.getcwd()
    _search_first(home)
    try:
        module = importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (where == exc.name or where.startswith(exc.name + ".")):
            raise  # the module exists; something it imports does not
        if folder is not None:
            raise TargetError(
                f"No module named {where!r} ({exc}; looked in {folder}, where `run` imported it from, and the "
                "installed packages). If the code moved, pass --target with where it is now."
            ) from None
        raise TargetError(
            f"No module named {where!r} ({exc}; looked in {home} and the installed packages); "
            "give a file path or an importable module."
        ) from None
    _searched.setdefault(module.__name__, module)
    return module


def _search_first(folder: str) -> None:
    """Modules named by name are imported from ``folder`` before the installed packages."""
    if folder not in sys.path:
        sys.path.insert(0, folder)


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


def _import_for(where: str, label: str, folder: str | None = None) -> ModuleType:
    """`_load_module` for ``--context``: every failure says which reference and how to fix it."""
    if _is_path(where) and not Path(where).is_file():
        raise TargetError(f"{label}: no file {where} (looked in {Path.cwd()}). {CONTEXT_FORMS}")
    try:
        return _load_module(where, folder)
    except TargetError as exc:
        if "No module named" in str(exc) and folder is not None:
            raise TargetError(
                f"{label}: no module named {where!r} (looked in {folder}, where `run` imported it from, and the "
                "installed packages). If the code moved, pass --context with where it is now."
            ) from None
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
