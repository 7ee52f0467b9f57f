"""What several commands share: the store, JSON and context options, positional arguments, the
error for a bad value, the store a command opens, and the job a job-id prefix names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import AetherFlowError

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_STORE = "sqlite:///.aetherflow/runs.db"
LEASE = 30.0  # a worker's default lease: how long a silent worker on another host keeps its jobs

F = TypeVar("F", bound=Callable[..., Any])

store_option = click.option(
    "--store", default=DEFAULT_STORE, help="Store URL (sqlite:///..., postgresql://..., memory://)."
)
json_option = click.option("--json", "as_json_", is_flag=True, help="Print JSON for scripts.")
context_option = click.option(
    "--context",
    default=None,
    help="The flow's context: module:Class, path/to/file.py:Class, or a TOML profile (file.toml).",
)


def argument(name: str, help: str) -> Callable[[F], F]:
    """A required positional argument, shown as its name in usage lines and errors ("Missing argument 'target'")."""
    return click.argument(name, metavar=name, help=help)


class UsageError(AetherFlowError):
    """A bad command-line value; the message says which and how to fix it."""


def open_to_write(url: str) -> Store:
    """The store a command writes to (created, owner-only, on first use)."""
    from ..store import open_store

    return open_store(url)


def open_to_read(url: str) -> Store:
    """The store a read command looks at: read-only when it exists, so a store on a
    read-only mount, or someone else's, can still be read; never written by reading.

    A SQLite store that does not exist has no jobs: reading it (a typo in ``--store``, or
    ``jobs`` before the first run) creates neither the file nor its folder.
    """
    from ..store import open_store

    if url.startswith("sqlite://"):
        from ..store.sqlite import sqlite_path

        if sqlite_path(url)[0].is_file():
            return open_store(url, readonly=True)
        return open_store("memory://")
    return open_store(url)


def full_id(st: Store, prefix: str) -> str:
    """The id of the one job whose id starts with ``prefix``; none or several is a usage error."""
    if len(prefix) >= 32:
        return prefix
    matches = st.job_ids(prefix, limit=2)  # among every job in the store, not only the newest
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"No job id starts with {prefix!r}; list jobs with `aetherflow jobs`.")
    raise UsageError(
        f"Several jobs start with {prefix!r} ({', '.join(m[:16] for m in matches)}, ...); give more characters."
    )
