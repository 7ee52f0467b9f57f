"""AetherFlow's log records on stderr with secret inputs masked, and a failed node's record held
until the command has printed its own error.

Both live for one command, so this module's state is the process's: the spellings of the
secret inputs `run` was given, and the records `failures` holds.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from .options import UsageError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_secrets: list[str] = []  # every spelling of this command's secret inputs (hide_secret_inputs)


def hide_secret_inputs(flow: Any, values: dict[str, Any]) -> None:
    """Remember the inputs read by a secret parameter, so no message prints them (`without_secrets`)."""
    from ..redaction import mentions_secret

    for vertex in flow.graph.nodes:
        for name, value in values.items():
            if name in vertex.param_names and mentions_secret(vertex.annotation(name)):
                _secrets.extend(_spellings(value))


def _spellings(value: Any) -> list[str]:
    """How a secret input may appear in a message: as given, repr'd, as JSON; and its parts."""
    if isinstance(value, dict):
        return [text for v in value.values() for text in _spellings(v)]
    if isinstance(value, (list, tuple)):
        return [text for v in value for text in _spellings(v)]
    if value is None or isinstance(value, bool):
        return []
    return [t for t in {str(value), repr(value), json.dumps(value, default=str)} if len(t) >= 1]


def without_secrets(text: str) -> str:
    """``text`` with every spelling of a secret input masked (the longest first, so none shows through)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "**********")
    return text


def log_level(name: str) -> int:
    """``--log-level``'s value as a `logging` level; a name that is not one is a usage error."""
    if name.upper() not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)} (any case), found {name!r}.")
    return logging.getLevelName(name.upper())  # type: ignore[no-any-return]


def log_without_secrets(level: int = logging.WARNING) -> None:
    """Print AetherFlow's records from ``level`` up on stderr, secret inputs masked, failures held."""
    # What Python's last-resort handler would print (warnings and up, the message only),
    # through a formatter that masks secret inputs. Left alone if the user set up logging.
    library = logging.getLogger("aetherflow")
    if level != logging.WARNING:  # --log-level: AetherFlow's records from that level up
        library.setLevel(level)
    if library.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(_SecretFreeFormatter("%(message)s"))
    handler.addFilter(failures)
    failures.handler = handler
    library.addHandler(handler)
    library.propagate = False


class _SecretFreeFormatter(logging.Formatter):
    """Log lines as Python prints them by default, with secret inputs masked."""

    def format(self, record: logging.LogRecord) -> str:
        return without_secrets(super().format(record))


class HeldFailures(logging.Filter):
    """Holds the worker's record of each node that failed for good until the command ends.

    A command prints a failed job's error itself (the `error:` line, or `recover`'s line
    per job) and adds its text to `printed`; the worker's WARNING with the same text would
    print it twice. `release` then prints the held records whose text the command did not
    print (another node that failed in the same job, say).
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []
        self.handler: logging.Handler | None = None
        self.printed: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.name == "aetherflow.worker"
            and hasattr(record, "node")
            and isinstance(record.args, tuple)
            and len(record.args) == 1
            and isinstance(record.args[0], BaseException)
        ):
            self.held.append(record)
            return False
        return True

    def release(self) -> None:
        held, self.held = self.held, []
        for record in held:
            if self.handler is not None and record.getMessage() not in self.printed:
                self.handler.emit(record)


failures = HeldFailures()
