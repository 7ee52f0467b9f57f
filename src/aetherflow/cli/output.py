"""What commands print: the consoles (made on first print), tables, status colours, escaping, JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class _LazyConsole:
    """A rich `Console` made on first print: `--help` and `--json` print without rich,
    whose import is a third of the command's start-up."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def print(self, *objects: Any, **options: Any) -> None:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, soft_wrap=True)
        self._console.print(*objects, **options)


out = _LazyConsole(stderr=False)
err = _LazyConsole(stderr=True)


def escape(text: str) -> str:
    """User text inside rich markup, printed as written (`[/data/in.csv]` is not a tag)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _table(*headers: str) -> Table:
    from rich.table import Table

    return Table(*headers)


def _styled(status: str) -> str:
    color = {
        "completed": "green",
        "failed": "red",
        "suspended": "yellow",
        "running": "blue",
        "cancelled": "magenta",
    }.get(status, "white")
    return f"[{color}]{status}[/]"


def _json_line(value: Any) -> str:
    try:
        from ..store.serialize import to_json

        return to_json(value)
    except (TypeError, ValueError):
        return json.dumps(repr(value))
