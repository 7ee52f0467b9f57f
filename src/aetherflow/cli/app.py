"""The typer app and the console-script entry point: one line per error, and the exit code.

The app lists the commands in the order ``--help`` shows them; each is a plain function in
the module of its concept, which knows nothing of the app.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from ..errors import AetherFlowError, ContextProfileError
from ..errors import UsageError as ApiUsageError
from . import dashboard, drawing, history, running
from .logs import failures, without_secrets
from .options import UsageError
from .output import err
from .running import StillSuspendedError

# Plain help text (no rich_markup_mode): typer's rich help imports rich's markdown and
# traceback modules, a third of `aetherflow --help`'s start-up.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Run AetherFlow flows and look at their history.",
)
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
    app.command()(_command)

_debug = False  # --debug: print the traceback above the one-line error


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    global _debug
    _debug = debug


def main() -> None:
    """Console-script entry point: one clear line per error, non-zero exit."""
    try:
        app(standalone_mode=False)
        failures.release()
    except AetherFlowError as exc:
        _fail(exc, _exit_code(exc))
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except TyperException as exc:  # a bad option or a missing argument: click explains it
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        sys.exit(getattr(exc, "exit_code", 2))
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
