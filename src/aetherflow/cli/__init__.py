"""The ``aetherflow`` command: run flows, list and show jobs, resume, draw graphs, stats.

The default store is ``.aetherflow/runs.db`` under the current folder (SQLite, created on
first use). Errors print one line saying what went wrong and how to fix it, and exit
non-zero; ``--debug`` shows the traceback.

One module per concept:

- `app`: the click group, `main` (the console script), exit codes and the one-line error.
- `running`: ``run``, ``resume``, ``recover`` (inputs, answers, the context check).
- `history`: ``jobs``, ``show``, ``stats`` (times and durations as a reader wants them).
- `drawing`: ``graph``. `dashboard`: ``ui``.
- `options`: what several commands share (the store and context options, `UsageError`,
  opening a store to write or to read, a job id from its prefix).
- `output`: the consoles, tables, status colours, escaping, JSON lines.
- `logs`: log records without secret inputs, and node failures held until the command
  has printed its own error.

The flow, store and report modules (pydantic, the graph compiler) and rich are imported
inside the code that uses them, so ``aetherflow --help`` and a typo in a command line
answer at once (tests/test_cli.py checks which modules ``--help`` and ``jobs`` import).
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
