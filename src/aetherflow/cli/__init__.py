"""The ``aetherflow`` command: run flows, list and show jobs, resume, draw graphs, stats.

The default store is ``.aetherflow/runs.db`` under the current folder (SQLite, created on
first use). Errors print one line saying what went wrong and how to fix it, and exit
non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
