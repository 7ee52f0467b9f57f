"""What commands print: the consoles (made on first print), tables, status colours, escaping,
and a value as one JSON line.

rich is imported on first use, never at start-up: `--help` and `--json` print without it, and
its import is a third of the command's start-up.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class _LazyConsole:
    """A rich `Console` made on first print, so a command that prints nothing rich never imports rich."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def print(self, *objects: Any, **options: Any) -> None:
        if self._console is None:
            from rich.console import Console

            # emoji=False: user text (a flow name, an error) is printed as written, ":bug:" included;
            # rich would also import its 4,000-entry emoji table on every first print.
            self._console = Console(stderr=self._stderr, soft_wrap=True, emoji=False)
        self._console.print(*objects, **options)


out = _LazyConsole(stderr=False)
err = _LazyConsole(stderr=True)

_STATUS_COLORS = {
    "completed": "green",
    "failed": "red",
    "suspended": "yellow",
    "running": "blue",
    "cancelled": "magenta",
}


def escape(text: str) -> str:
    """User text inside rich markup, printed as written (`[/data/in.csv]` is not a tag)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def table(*headers: str) -> Table:
    """A rich table with these column headers (rich imported here, on first use)."""
    from rich.table import Table

    return Table(*headers)


def styled(status: str) -> str:
    """A job or node status in its colour, as rich markup."""
    return f"[{_STATUS_COLORS.get(status, 'white')}]{status}[/]"


def json_line(value: Any) -> str:
    """A job's output as the JSON a store keeps of it; its repr as a JSON string if it has no JSON form."""
    try:
        from ..store.jsontext import to_json

        return to_json(value)
    except (TypeError, ValueError):
        return json.dumps(repr(value))
