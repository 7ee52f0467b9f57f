"""The lifetime rule: a provider may not depend on a provider that lives shorter than it.

A worker-scoped database handle built from a job-scoped object would keep that object
alive past its job (and use it after its teardown), so such a context is refused before
any node runs. Factories (a new instance per injection) may be used from anywhere.
"""

from __future__ import annotations

from typing import Any

from .errors import FlowDefinitionError
from .scopes import Scope


def lifetime_problems(context: Any) -> list[str]:
    """Every provider of ``context`` that depends on a shorter-lived one, as sentences."""
    from .providers import scope_of

    names = {id(p): name for name, p in context.providers.items()}
    problems = []
    for name, provider in context.providers.items():
        mine = scope_of(provider)
        if mine is Scope.INJECTION:
            continue
        for dep in getattr(provider, "related", ()):
            theirs = scope_of(dep)
            if theirs is not Scope.INJECTION and theirs > mine:
                dep_name = names.get(id(dep), repr(dep))
                problems.append(
                    f"provider '{name}' ({mine.name.lower()} scope) depends on '{dep_name}' "
                    f"({theirs.name.lower()} scope), which lives shorter; give '{dep_name}' a "
                    f"longer scope or '{name}' a shorter one."
                )
    return problems


def check_lifetimes(context: Any, flow: str) -> None:
    problems = lifetime_problems(context)
    if problems:
        raise FlowDefinitionError(flow, problems)
