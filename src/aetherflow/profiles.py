"""Context profiles: a TOML file switches providers between scopes without touching nodes.

```toml
[context]
base = "myapp.contexts:AppContext"   # importable module:Class
[providers.cache]
scope = "shared"    # shared | thread | worker | job | node | factory
```
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from dependency_injector import providers as _di

from . import providers as af
from .errors import ContextProfileError

SCOPES: dict[str, type] = {
    "shared": af.Singleton,
    "thread": af.ThreadLocalSingleton,
    "worker": af.WorkerScoped,
    "job": af.JobScoped,
    "node": af.NodeScoped,
    "factory": _di.Factory,
}


def load_context(path: str | os.PathLike[str]) -> Any:
    """Read a context profile and return the context instance it describes.

    >>> ctx = load_context("contexts/shared.toml")
    >>> flow.run({"n": 3}, context=ctx)
    """
    file = Path(path)
    where = str(file)
    data, base = _read(file)
    cls = _import(base, file.parent, where)
    ctx = cls()
    problems = []
    for name, spec in data.get("providers", {}).items():
        scope = spec.get("scope") if isinstance(spec, dict) else None
        if name not in ctx.providers:
            problems.append(
                f"[providers.{name}]: {base} has no provider '{name}' (it has: {', '.join(ctx.providers)})."
            )
        elif scope not in SCOPES:
            problems.append(f"[providers.{name}] scope must be one of {', '.join(SCOPES)}, found {scope!r}.")
        else:
            ctx.set_provider(name, _rescoped(ctx.providers[name], SCOPES[scope]))
    if problems:
        raise ContextProfileError(where, problems)
    return ctx


def base_module(path: str | os.PathLike[str]) -> str:
    """The module a profile's ``[context] base`` names, as the profile spells it.

    >>> base_module("contexts/shared.toml")
    'examples.services'
    """
    return _read(Path(path))[1].partition(":")[0]


def _read(file: Path) -> tuple[dict[str, Any], str]:
    """The profile's TOML and its base ``module:Class``; every way it is unreadable says why."""
    where = str(file)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise ContextProfileError(where, [f"no such file (looked for {file.resolve()})."]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ContextProfileError(where, [f"not valid TOML: {exc}."]) from None
    base = data.get("context", {}).get("base")
    if not isinstance(base, str) or ":" not in base:
        raise ContextProfileError(where, [f'[context] base must be "module:Class", found {base!r}.'])
    return data, base


def _import(ref: str, folder: Path, where: str) -> Any:
    module_name, _, attr = ref.partition(":")
    # The base is importable as installed, from the current folder, or beside the profile.
    for place in (str(folder.resolve()), os.getcwd()):
        if place not in sys.path:
            sys.path.append(place)
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ContextProfileError(where, [f"cannot import context base {ref!r}: {exc}."]) from None


def _rescoped(provider: Any, kind: type) -> Any:
    """The same construction (callable, args, kwargs), with another lifetime."""
    if not hasattr(provider, "provides"):
        raise ContextProfileError("(profile)", [f"provider {provider!r} has no factory to re-scope."])
    accepts = {"guard"} if kind in (af.Singleton, af.WorkerScoped, af.JobScoped, af.NodeScoped) else set()
    if kind is not _di.Factory:
        accepts.add("teardown")
    options = {k: getattr(provider, k) for k in accepts if getattr(provider, k, None) is not None}
    return kind(provider.provides, *provider.args, **provider.kwargs, **options)
