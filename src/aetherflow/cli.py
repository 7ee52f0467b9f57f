"""The ``aetherflow`` command: run flows, list and show jobs, resume, draw graphs, stats.

The default store is ``.aetherflow/runs.db`` under the current folder (SQLite, created on
first use). Errors print one line saying what went wrong and how to fix it, and exit
non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.exceptions import TyperException

from .errors import AetherFlowError, ContextProfileError
from .errors import UsageError as ApiUsageError
from .job import JobSuspendedError
from .sentinels import UNSET

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from .store import Store

# The flow, store and report modules (pydantic, the graph compiler) are imported inside the
# commands that use them: `aetherflow --help` and typos in a command line answer at once.

DEFAULT_STORE = "sqlite:///.aetherflow/runs.db"
LEASE = 30.0  # a worker's default lease: how long a silent worker on another host keeps its jobs

# Plain help text (no rich_markup_mode): typer's rich help imports rich's markdown and
# traceback modules, a third of `aetherflow --help`'s start-up.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Run AetherFlow flows and look at their history.",
)


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


_settings: dict[str, Any] = {"debug": False, "secrets": [], "printed": set()}  # printed: errors already shown

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


class StillSuspendedError(AetherFlowError):
    """The job paused (exit code 3): not a failure, it waits for `aetherflow resume`."""


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    _settings["debug"] = debug


def _open(url: str) -> Store:
    """The store a command writes to (created, owner-only, on first use)."""
    from .store import open_store

    return open_store(url)


def _open_to_read(url: str) -> Store:
    """The store a read command looks at: read-only when it exists, so a store on a
    read-only mount, or someone else's, can still be read; never written by reading."""
    from .store import open_store

    if url.startswith("sqlite://"):
        from .store.sqlite import sqlite_path

        if sqlite_path(url)[0].is_file():
            return open_store(url, readonly=True)
    return open_store(url)


def _inputs(pairs: list[str], file: Path | None) -> dict[str, Any]:
    from .targets import parse_value

    values: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--inputs {file}: cannot read a JSON object ({exc}).") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--inputs {file}: expected a JSON object of inputs, found {type(loaded).__name__}.")
        values.update(loaded)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--input {pair!r}: expected key=value, e.g. --input n=3.")
        values[key] = parse_value(text)
    return values


@app.command()
def run(
    target: Annotated[str, typer.Argument(help="path/to/file.py:flow or package.module:flow")],
    input: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="An input as key=value (JSON values parse).")
    ] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="A JSON file of inputs.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Worker threads.")] = None,
    store: StoreOpt = DEFAULT_STORE,
    context: ContextOpt = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            help="Show AetherFlow's log records from this level up on stderr: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
        ),
    ] = "WARNING",
) -> None:
    """Run one job of a flow and print its output as JSON on the last line."""
    from .progress import progress_bar
    from .targets import load_context_ref, load_target, record_run
    from .worker import Worker

    flow = load_target(target)
    values = _inputs(input or [], inputs)
    _hide_secret_inputs(flow, values)
    _log_without_secrets(
        _log_level(log_level)
    )  # before the worker: it decides per job whether DEBUG records are wanted
    ctx = load_context_ref(context) if context is not None else None
    _check_context(flow, ctx, values)
    st = _open(store)
    st.remember_target(flow.name, record_run(target, context))
    with (
        Worker(threads=threads, store=st) as worker,
        progress_bar(flow.name, "node runs done", enabled=len(flow.graph.names) > 1) as advance,
    ):
        worker.on("node_completed", lambda _e, _d: advance())
        job = worker.submit(flow, values, context=ctx)
        err.print(f"job {job.id} ({escape(flow.name)})", style="dim", highlight=False)
        try:
            output = job.result()
        except JobSuspendedError as exc:
            raise StillSuspendedError(
                f"Job {job.id} is suspended at node '{exc.node}'"
                + (f": {exc.reason}" if exc.reason else "")
                + f". Continue it with: aetherflow resume {job.id[:12]} --answer JSON (or --input key=value)"
            ) from None
        finally:
            st.flush()
    print(_json_line(output))
    st.close()


def _check_context(flow: Any, ctx: Any, values: dict[str, Any], action: str = "ran") -> None:
    """Bind the flow to its context before anything is recorded; if a missing context is the
    cause of a failure, say so (which providers, which context was used, which to pass)."""
    from .context import provider_names
    from .errors import FlowDefinitionError, MissingInputError
    from .targets import missing_context

    used = ctx if ctx is not None else flow.context
    try:
        plan = flow.graph.bind(provider_names(used))
        if action == "ran":
            plan.check_inputs(values, flow.name)
    except (FlowDefinitionError, MissingInputError) as exc:
        why = missing_context(flow, used, values, action)
        if why is None:
            raise
        raise UsageError(why) from exc


def _json_line(value: Any) -> str:
    try:
        from .store.serialize import to_json

        return to_json(value)
    except (TypeError, ValueError):
        return json.dumps(repr(value))


@app.command()
def jobs(
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="pending|running|completed|failed|suspended|cancelled")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time, or an age like 30m, 2h, 7d.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    store: StoreOpt = DEFAULT_STORE,
    as_json_: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    from .store.records import as_json

    if status is not None and status not in _STATUSES:
        raise UsageError(f"--status must be one of {', '.join(_STATUSES)}; found {status!r}.")
    st = _open_to_read(store)
    records = st.jobs(flow=flow, status=status, since=_when(since), limit=limit)
    if as_json_:
        print(json.dumps([as_json(r) for r in records]))
        return
    table = _table("id", "flow", "status", "created", "duration", "error")
    table.columns[0].no_wrap = True
    orphans = 0
    for r in records:
        status = _styled(r.status.value)
        if _orphaned(st, r):
            status += " [yellow](owner gone)[/]"
            orphans += 1
        table.add_row(
            r.id[:12],
            escape(r.flow),
            status,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _duration(r.started_at, r.finished_at),
            escape(_first_line(r.error)),
        )
    out.print(table)
    if orphans:
        err.print(
            f"{orphans} running job(s) belong to a process that is gone: `aetherflow recover` takes them over.",
            highlight=False,
        )


_STATUSES = ("pending", "running", "completed", "failed", "suspended", "cancelled")


def _first_line(text: str | None) -> str:
    """An error's first line, without the "Node 'x' (job ..., attempt n): " preamble the table already shows."""
    line = (text or "").strip().split("\n", 1)[0]
    return re.sub(r"^Node '([^']*)' \(job [0-9a-f]+, attempt \d+\): ", r"\1: ", line)[:100]


def _orphaned(st: Store, record: Any) -> bool:
    """A job recorded running or pending whose owning process is gone (see Store.orphaned_jobs)."""
    return record.status in ("running", "pending") and not st.owner_alive(record.id, time.time(), LEASE)


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(help="A job id (a unique prefix is enough).")],
    store: StoreOpt = DEFAULT_STORE,
    as_json_: JsonOpt = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="path/to/file.py:flow to draw the flow graph in the HTML report (its code is imported)."
        ),
    ] = None,
) -> None:
    """One job: its status and a per-node timeline."""
    from .report import html_report
    from .store.records import as_json
    from .targets import load_target

    st = _open_to_read(store)
    job = st.job(_full_id(st, job_id))
    runs = st.node_runs(job.id)
    if html is not None:
        try:  # the dashboard's job page as one file; the graph comes from the stored topology (no code imported)
            from .ui.export import job_html

            html.write_text(job_html(st, job.id))
            print(f"wrote {html}: the flow graph and a timeline of {len(runs)} node runs")
        except ImportError:  # without the 'ui' extra: the plain report, its graph only from a --target the user names
            graph = load_target(target).graph if target else None
            html.write_text(html_report(job, runs, graph, stored_target=None if target else st.target_of(job.flow)))
            drawn = "the flow graph and " if graph is not None else ""
            print(f"wrote {html}: {drawn}a timeline of {len(runs)} node runs")
        return
    if as_json_:
        print(json.dumps({"job": as_json(job), "node_runs": [as_json(r) for r in runs]}))
        return
    out.print(
        f"[bold]{escape(job.flow)}[/] job {job.id}: {_styled(job.status.value)}  {_duration(job.started_at, job.finished_at)}",
        highlight=False,
    )
    if _orphaned(st, job):
        out.print(
            f"[yellow]Its owning process is gone (worker '{escape(job.worker)}'): `aetherflow recover` takes it over.[/]",
            highlight=False,
        )
    if job.error:
        out.print(f"  error: {escape(job.error)}", highlight=False)
    table = _table("node", "status", "iter", "try", "thread", "start (ms)", "duration")
    t0 = job.started_at or job.created_at
    for r in runs:
        offset = (r.started_at - t0).total_seconds() * 1000
        table.add_row(
            escape(r.node + (f"[{r.item}]" if r.item is not None else "")),
            _styled(r.status.value),
            str(r.iteration),
            str(r.attempt),
            escape(r.thread),
            f"{offset:.1f}",
            _duration(r.started_at, r.finished_at),
        )
    out.print(table)


@app.command()
def resume(
    job_id: Annotated[str, typer.Argument(help="The job to continue.")],
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="New or changed input as key=value.")] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Where the flow's code is, if not the one `run` used.")
    ] = None,
    answer: Annotated[
        str | None,
        typer.Option("--answer", help="JSON answer to the suspension, given to the node's `answer` parameter."),
    ] = None,
    context: ContextOpt = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Continue a suspended or crashed job; completed nodes are not run again."""
    from .targets import load_context_ref, load_target, recorded_run
    from .worker import Worker

    st = _open(store)
    record = st.job(_full_id(st, job_id))
    if record.status == "completed":  # its recorded result; nothing is written
        if answer is not None:
            raise UsageError(f"Job {record.id} is completed: there is no suspension for --answer to answer.")
        print(_json_line(record.output))
        st.close()
        return
    remembered = st.target_of(record.flow)
    recorded = recorded_run(remembered) if remembered is not None else None
    # What this command line names is found from here; what `run` recorded, where `run` found it.
    if target is not None:
        flow = load_target(target)
    elif recorded is not None:
        flow = load_target(recorded.target, recorded.folder)
    else:
        raise UsageError(
            f"Job {record.id} belongs to flow '{record.flow}', whose code location is unknown; pass --target path/to/file.py:flow."
        )
    if context is not None:  # the context `run` was given, unless another is named
        ctx = load_context_ref(context)
    elif recorded is not None and recorded.context is not None:
        ctx = load_context_ref(recorded.context, recorded.folder)
    else:
        ctx = None
    _check_context(flow, ctx, {}, action="was resumed")
    _log_without_secrets()
    with Worker(store=st, flows=[flow]) as worker:
        job = worker.resume(record.id, inputs=_inputs(input or [], None) or None, answer=_answer(answer), context=ctx)
        try:
            output = job.result()
        except JobSuspendedError as exc:  # suspended again: exit 3, like `run`
            raise StillSuspendedError(
                f"Job {job.id} is suspended at node '{exc.node}'"
                + (f": {exc.reason}" if exc.reason else "")
                + f". Continue it with: aetherflow resume {job.id[:12]} --answer JSON (or --input key=value)"
            ) from None
    print(_json_line(output))
    st.close()


@app.command()
def recover(
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            help="path/to/file.py:flow of a flow to recover (repeatable); default: the flows `run` recorded.",
        ),
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Take over every running job whose process is gone; completed nodes are not run again."""
    from .targets import TargetError, load_target, recorded_run
    from .worker import Worker

    st = _open(store)
    if target:
        flows = [_in_recorded_context(st, load_target(t)) for t in target]
    else:  # an action, like `resume`: it runs the code `run` recorded for each orphan's flow
        names = {st.job(job_id).flow for job_id in st.orphaned_jobs(LEASE, time.time())}
        flows = []
        for name in sorted(names):
            remembered = st.target_of(name)
            if remembered is None:
                continue
            try:
                recorded = recorded_run(remembered)
                flows.append(_in_recorded_context(st, load_target(recorded.target, recorded.folder)))
            except (
                TargetError,
                ContextProfileError,
            ) as exc:  # one flow's code moved: the others' jobs are still recovered
                err.print(
                    f"skipping flow '{escape(name)}': {escape(str(exc))} (pass --target to recover its jobs)",
                    highlight=False,
                )
    _log_without_secrets()
    with Worker(store=st, flows=flows) as worker:
        try:
            jobs = _recover_all(worker)
        except KeyboardInterrupt:  # stop at once: what is left stays recoverable (a recovery tool must not cancel)
            err.print("interrupted: the jobs not finished stay recoverable", highlight=False)
            os._exit(130)
    err.print(f"recovered {len(jobs)} job(s)", highlight=False)
    st.close()


def _in_recorded_context(st: Store, flow: Any) -> Any:
    """``flow`` with the context `run` was given for it, if any (a flow of its own, not the module's)."""
    from .targets import load_context_ref, recorded_run

    remembered = st.target_of(flow.name)
    recorded = recorded_run(remembered) if remembered is not None else None
    if recorded is None or recorded.context is None:
        return flow
    own = flow.named(flow.name)
    own.context = load_context_ref(recorded.context, recorded.folder)
    return own


def _recover_all(worker: Any) -> list[Any]:
    jobs = worker.recover()
    for job in jobs:
        try:
            outcome = _json_line(job.result())
        except AetherFlowError as exc:
            _settings["printed"].add(str(exc))
            outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        print(f"{job.id[:12]} {job.flow.name} {job.status.value} {outcome}")
    return list(jobs)


def _answer(text: str | None) -> Any:
    if text is None:
        return UNSET
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--answer must be JSON (for example --answer '\"yes\"' or --answer '{{\"approved\": true}}'); found {text!r}: {exc}."
        ) from exc


@app.command()
def graph(
    target: Annotated[str, typer.Argument(help="path/to/file.py:flow or package.module:flow")],
    format: Annotated[str, typer.Option("--format", help="mermaid or dot")] = "mermaid",
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            help="Also check the flow against this context (module:Class, path/to/file.py:Class or a .toml profile).",
        ),
    ] = None,
) -> None:
    """Print a flow's graph as Mermaid or Graphviz DOT."""
    from .targets import load_context_ref, load_target

    flow = load_target(target)
    if format not in ("mermaid", "dot"):
        raise UsageError(f"--format must be 'mermaid' or 'dot', found {format!r}.")
    flow.graph  # noqa: B018 - the shape's own checks (cycles, maps); which context fills a parameter is not drawn
    if context is not None:
        _check_context(flow, load_context_ref(context), {}, action="was checked")
    print(flow.to_mermaid() if format == "mermaid" else flow.to_dot(), end="")


@app.command()
def stats(
    flow: Annotated[str, typer.Argument(help="A flow name.")],
    since: Annotated[str | None, typer.Option("--since")] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json_: JsonOpt = False,
) -> None:
    """Counts, success rate and per-node p50/p95 of one flow."""
    from .store.records import as_json

    st = _open_to_read(store)
    s = st.stats(flow, since=_when(since))
    if as_json_:
        print(json.dumps(as_json(s)))
        return
    out.print(
        f"[bold]{escape(flow)}[/]: "
        + ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items()))
        + f"; success rate {s.success_rate:.1%}",
        highlight=False,
    )
    table = _table("node", "runs", "failed", "p50 (ms)", "p95 (ms)")
    for name, n in sorted(s.nodes.items()):
        table.add_row(escape(name), str(n.runs), str(n.failed), f"{n.p50 * 1000:.2f}", f"{n.p95 * 1000:.2f}")
    out.print(table)


# -- aetherflow ui: the run dashboard (extra aetherflow[ui]) -------------------------------


@app.command()
def ui(
    store: StoreOpt = DEFAULT_STORE,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")] = 8765,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the dashboard in a browser.")] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="Required on every request (or set AETHERFLOW_UI_TOKEN); needed for a non-loopback --host."
        ),
    ] = None,
) -> None:
    """Serve the run dashboard: jobs, graphs, timelines, state, flows and workers, in a browser."""
    import ipaddress
    import os
    import socket
    import threading

    try:
        import uvicorn

        from .ui.app import TOKEN_ENV, create_app
    except ImportError as exc:
        raise UsageError(f"The dashboard needs the 'ui' extra: pip install 'aetherflow[ui]' ({exc}).") from None
    token = token or os.environ.get(TOKEN_ENV) or None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token:
        raise UsageError(
            f"--host {host} exposes the dashboard beyond this machine: give a token with --token or {TOKEN_ENV}."
        )
    application = create_app(_open(store), token=token)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UsageError(f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port.") from None
    sock.listen(128)  # connections made from now on wait for the server
    bound = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}/"
    err.print(f"AetherFlow dashboard on {url} (store {store}); Ctrl-C stops it", highlight=False, markup=False)
    print(url, flush=True)
    if open_browser:
        import webbrowser

        opener = threading.Timer(0.5, webbrowser.open, args=(url + (f"?token={token}" if token else ""),))
        opener.daemon = True
        opener.start()
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", access_log=False))
    server.run(sockets=[sock])


def _full_id(st: Store, prefix: str) -> str:
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


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1] in units:
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected an ISO time (2026-01-31T12:00) or an age like 30m, 2h, 7d."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _styled(status: str) -> str:
    color = {
        "completed": "green",
        "failed": "red",
        "suspended": "yellow",
        "running": "blue",
        "cancelled": "magenta",
    }.get(status, "white")
    return f"[{color}]{status}[/]"


def _exit_code(exc: AetherFlowError) -> int:
    """2 for a command line to fix (usage, a target, a context profile), 3 for a job still suspended, else 1."""
    from .targets import TargetError

    if isinstance(exc, (UsageError, ApiUsageError, TargetError, ContextProfileError)):
        return 2
    return 3 if isinstance(exc, StillSuspendedError) else 1


def main() -> None:
    """Console-script entry point: one clear line per error, non-zero exit."""
    try:
        app(standalone_mode=False)
        _failures.release(_settings["printed"])
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


def _hide_secret_inputs(flow: Any, values: dict[str, Any]) -> None:
    """Remember the inputs read by a secret parameter, so no message prints them (`_without_secrets`)."""
    from .redaction import mentions_secret

    for vertex in flow.graph.nodes:
        for name, value in values.items():
            if name in vertex.param_names and mentions_secret(vertex.annotation(name)):
                _settings["secrets"].extend(_spellings(value))


def _spellings(value: Any) -> list[str]:
    """How a secret input may appear in a message: as given, repr'd, as JSON; and its parts."""
    if isinstance(value, dict):
        return [text for v in value.values() for text in _spellings(v)]
    if isinstance(value, (list, tuple)):
        return [text for v in value for text in _spellings(v)]
    if value is None or isinstance(value, bool):
        return []
    return [t for t in {str(value), repr(value), json.dumps(value, default=str)} if len(t) >= 1]


class _SecretFreeFormatter(logging.Formatter):
    """Log lines as Python prints them by default, with secret inputs masked."""

    def format(self, record: logging.LogRecord) -> str:
        return _without_secrets(super().format(record))


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(name: str) -> int:
    """``--log-level``'s value as a `logging` level; a name that is not one is a usage error."""
    if name.upper() not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)} (any case), found {name!r}.")
    return logging.getLevelName(name.upper())  # type: ignore[no-any-return]


def _log_without_secrets(level: int = logging.WARNING) -> None:
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
    handler.addFilter(_failures)
    _failures.handler = handler
    library.addHandler(handler)
    library.propagate = False


class _HeldFailures(logging.Filter):
    """Holds the worker's record of each node that failed for good until the command ends.

    A command prints a failed job's error itself (the `error:` line, or `recover`'s line
    per job); the worker's WARNING with the same text would print it twice. `release`
    then prints the held records whose text the command did not print (another node that
    failed in the same job, say).
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []
        self.handler: logging.Handler | None = None

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

    def release(self, printed: set[str]) -> None:
        held, self.held = self.held, []
        for record in held:
            if self.handler is not None and record.getMessage() not in printed:
                self.handler.emit(record)


_failures = _HeldFailures()


def _without_secrets(text: str) -> str:
    for secret in sorted(_settings["secrets"], key=len, reverse=True):
        text = text.replace(secret, "**********")
    return text


def _fail(exc: BaseException, code: int) -> None:
    _failures.release({*_settings["printed"], str(exc)})
    if _settings["debug"]:
        err.print(_without_secrets("".join(traceback.format_exception(exc))), highlight=False, markup=False, end="")
    message = " ".join(_without_secrets(str(exc)).split()) or type(exc).__name__
    err.print(f"error: {message}", highlight=False, markup=False)
    sys.exit(code)
