"""Store URLs for the contract tests: memory, a SQLite file, and PostgreSQL when reachable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PG_URL = os.environ.get("AETHERFLOW_PG_URL")


def postgres_url() -> str:
    """A clean PostgreSQL database, or skip with the reason."""
    if not PG_URL:
        pytest.skip("no PostgreSQL server: set AETHERFLOW_PG_URL (.ci/run starts one)")
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'aetherflow[postgres]'")
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at AETHERFLOW_PG_URL is not reachable: {exc}")
    return PG_URL


def store_url(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return postgres_url()
