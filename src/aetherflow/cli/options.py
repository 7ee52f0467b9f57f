"""What several commands share: the store and context options, the error for a bad value, the
store a command opens, and the job a job-id prefix names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import AetherFlowError

if TYPE_CHECKING:
    from ..store import Store

DEFAULT_STORE = "sqlite:///.aetherflow/runs.db"
LEASE = 30.0  # a worker's default lease: how long a silent worker on another host keeps its jobs

StoreOpt = Annotated[str, typer.Option("--store", help="Store URL (sqlite:///..., postgresql://..., memory://).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ContextOpt = Annotated[
    str | None,
    typer.Option(
        "--context",
        help="The flow's context: module:Class, path/to/file.py:Class, or a TOML profile (file.toml).",
    ),
]


class UsageError(AetherFlowError):
    """A bad command-line value; the message says which and how to fix it."""


def open_to_write(url: str) -> Store:
    """The store a command writes to (created, owner-only, on first use)."""
    from ..store import open_store

    return open_store(url)


def open_to_read(url: str) -> Store:
    """The store a read command looks at: read-only when it exists, so a store on a
    read-only mount, or someone else's, can still be read; never written by reading."""
    from ..store import open_store

    if url.startswith("sqlite://"):
        from ..store.sqlite import sqlite_path

        if sqlite_path(url)[0].is_file():
            return open_store(url, readonly=True)
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
