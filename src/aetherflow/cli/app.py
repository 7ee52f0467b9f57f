"""The click group and the console-script entry point: one line per error, and the exit code.

The group lists the commands in the order ``--help`` shows them; each is a click command in
the module of its concept, which knows nothing of the group.

click, not typer: typer builds a pydantic validator for every option, which made pydantic
(~60 ms) part of every command's start-up, ``--help`` included.
"""

from __future__ import annotations

import sys

import click

from ..errors import AetherFlowError, ContextProfileError
from ..errors import UsageError as ApiUsageError
from . import dashboard, drawing, history, running
from .logs import failures, without_secrets
from .options import UsageError
from .output import err
from .running import StillSuspendedError


class _Commands(click.Group):
    """A group that lists its commands in the order they were added (click sorts them by name)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


_debug = False  # --debug: print the traceback above the one-line error


@click.group(cls=_Commands, no_args_is_help=True, context_settings={"show_default": True})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def app(debug: bool) -> None:
    """Run AetherFlow flows and look at their history."""
    global _debug
    _debug = debug


for _command in (
    running.run,
    history.jobs,
    history.show,
    running.resume,
    running.recover,
    drawing.graph,
    history.stats,
    dashboard.ui,
):
    app.add_command(_command)


def main() -> None:
    """Console-script entry point: one clear line per error, non-zero exit."""
    try:
        app.main(standalone_mode=False)
        failures.release()
    except AetherFlowError as exc:
        _fail(exc, _exit_code(exc))
    except (click.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:  # a bad option or a missing argument: click explains it
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: one line, no traceback
        _fail(exc, 1)


def _exit_code(exc: AetherFlowError) -> int:
    """2 for a command line to fix (usage, a target, a context profile), 3 for a job still suspended, else 1."""
    from ..targets import TargetError

    if isinstance(exc, (UsageError, ApiUsageError, TargetError, ContextProfileError)):
        return 2
    return 3 if isinstance(exc, StillSuspendedError) else 1


def _fail(exc: BaseException, code: int) -> None:
    """Print the held node failures the error does not repeat, then the error on one line, and exit."""
    failures.printed.add(str(exc))
    failures.release()
    if _debug:
        import traceback

        err.print(without_secrets("".join(traceback.format_exception(exc))), highlight=False, markup=False, end="")
    message = " ".join(without_secrets(str(exc)).split()) or type(exc).__name__
    err.print(f"error: {message}", highlight=False, markup=False)
    sys.exit(code)
