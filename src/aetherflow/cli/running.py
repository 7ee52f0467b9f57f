"""The commands that run flows: ``run``, ``resume`` and ``recover``.

Each loads a flow's code (from the command line, or from where `run` recorded it), checks it
against its context before anything is written, and prints the job's output as JSON.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import AetherFlowError, ContextProfileError
from . import logs
from .options import LEASE, UsageError, argument, context_option, full_id, open_to_write, store_option
from .output import err, escape, json_line

if TYPE_CHECKING:
    from ..store import Store
    from ..targets import Recorded


class StillSuspendedError(AetherFlowError):
    """The job paused (exit code 3): not a failure, it waits for `aetherflow resume`."""


@click.command()
@argument("target", help="path/to/file.py:flow or package.module:flow")
@click.option("--input", "-i", multiple=True, help="An input as key=value (JSON values parse).")
@click.option("--inputs", type=click.Path(path_type=Path), help="A JSON file of inputs.")
@click.option("--threads", type=int, help="Worker threads.")
@store_option
@context_option
@click.option(
    "--log-level",
    default="WARNING",
    help="Show AetherFlow's log records from this level up on stderr: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
)
def run(
    target: str,
    input: tuple[str, ...],
    inputs: Path | None,
    threads: int | None,
    store: str,
    context: str | None,
    log_level: str,
) -> None:
    """Run one job of a flow and print its output as JSON on the last line."""
    from ..progress import progress_bar
    from ..targets import load_context_ref, load_target, record_run
    from ..worker import Worker

    flow = load_target(target)
    values = _inputs(input, inputs)
    logs.hide_secret_inputs(flow, values)
    # Before the worker is made: it decides per job whether DEBUG records are wanted.
    logs.log_without_secrets(logs.log_level(log_level))
    ctx = load_context_ref(context) if context is not None else None
    check_context(flow, ctx, values)
    st = open_to_write(store)
    st.remember_target(flow.name, record_run(target, context))
    with (
        Worker(threads=threads, store=st) as worker,
        progress_bar(flow.name, "node runs done", enabled=len(flow.graph.names) > 1) as advance,
    ):
        worker.on("node_completed", lambda _e, _d: advance())
        job = worker.submit(flow, values, context=ctx)
        err.print(f"job {job.id} ({escape(flow.name)})", style="dim", highlight=False)
        try:
            output = _output(job)
        finally:
            st.flush()
    print(json_line(output))
    st.close()


@click.command()
@argument("job_id", help="The job to continue.")
@click.option("--input", "-i", multiple=True, help="New or changed input as key=value.")
@click.option("--target", help="Where the flow's code is, if not the one `run` used.")
@click.option("--answer", help="JSON answer to the suspension, given to the node's `answer` parameter.")
@context_option
@store_option
def resume(
    job_id: str, input: tuple[str, ...], target: str | None, answer: str | None, context: str | None, store: str
) -> None:
    """Continue a suspended or crashed job; completed nodes are not run again."""
    from ..worker import Worker

    st = open_to_write(store)
    record = st.job(full_id(st, job_id))
    if record.status == "completed":  # its recorded result; nothing is written
        if answer is not None:
            raise UsageError(f"Job {record.id} is completed: there is no suspension for --answer to answer.")
        print(json_line(record.output))
        st.close()
        return
    recorded = _recorded(st, record.flow)
    flow = _flow_to_resume(record, recorded, target)
    ctx = _context_to_resume(recorded, context)
    check_context(flow, ctx, {}, action="was resumed")
    logs.log_without_secrets()
    with Worker(store=st, flows=[flow]) as worker:
        job = worker.resume(record.id, inputs=_inputs(input, None) or None, answer=_answer(answer), context=ctx)
        output = _output(job)  # suspended again: exit 3, like `run`
    print(json_line(output))
    st.close()


@click.command()
@click.option(
    "--target",
    multiple=True,
    help="path/to/file.py:flow of a flow to recover (repeatable); default: the flows `run` recorded.",
)
@store_option
def recover(target: tuple[str, ...], store: str) -> None:
    """Take over every running job whose process is gone; completed nodes are not run again."""
    from ..targets import load_target
    from ..worker import Worker

    st = open_to_write(store)
    flows = [_in_recorded_context(st, load_target(t)) for t in target] if target else _orphans_flows(st)
    logs.log_without_secrets()
    with Worker(store=st, flows=flows) as worker:
        try:
            jobs = _recover_all(worker)
        except KeyboardInterrupt:  # stop at once: what is left stays recoverable (a recovery tool must not cancel)
            err.print("interrupted: the jobs not finished stay recoverable", highlight=False)
            os._exit(130)
    err.print(f"recovered {len(jobs)} job(s)", highlight=False)
    st.close()


def check_context(flow: Any, ctx: Any, values: dict[str, Any], action: str = "ran") -> None:
    """Bind the flow to its context before anything is recorded; if a missing context is the
    cause of a failure, say so (which providers, which context was used, which to pass)."""
    from ..context import provider_names
    from ..errors import FlowDefinitionError, MissingInputError
    from ..targets import missing_context

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


def _inputs(pairs: tuple[str, ...], file: Path | None) -> dict[str, Any]:
    """The job's inputs: the ``--inputs`` JSON file's, then each ``--input key=value`` over them."""
    from ..targets import parse_value

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


def _answer(text: str | None) -> Any:
    """``--answer``'s JSON as the value a suspended node's `answer` parameter receives."""
    from ..sentinels import UNSET

    if text is None:
        return UNSET
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--answer must be JSON (for example --answer '\"yes\"' or --answer '{{\"approved\": true}}'); found {text!r}: {exc}."
        ) from exc


def _output(job: Any) -> Any:
    """The job's output; a job that suspends is exit code 3, with the command that continues it."""
    from ..job import JobSuspendedError  # here: the job module brings concurrent.futures, which --help never needs

    try:
        return job.result()
    except JobSuspendedError as exc:
        raise StillSuspendedError(
            f"Job {job.id} is suspended at node '{exc.node}'"
            + (f": {exc.reason}" if exc.reason else "")
            + f". Continue it with: aetherflow resume {job.id[:12]} --answer JSON (or --input key=value)"
        ) from None


def _recorded(st: Store, flow_name: str) -> Recorded | None:
    """What `run` recorded for a flow in this store (its target, --context and folder), if it ran it."""
    from ..targets import recorded_run

    remembered = st.target_of(flow_name)
    return recorded_run(remembered) if remembered is not None else None


def _flow_to_resume(record: Any, recorded: Recorded | None, target: str | None) -> Any:
    """The resumed job's flow: from ``--target`` if given, else from the code `run` recorded."""
    from ..targets import load_target

    # What this command line names is found from here; what `run` recorded, where `run` found it.
    if target is not None:
        return load_target(target)
    if recorded is not None:
        return load_target(recorded.target, recorded.folder)
    raise UsageError(
        f"Job {record.id} belongs to flow '{record.flow}', whose code location is unknown; pass --target path/to/file.py:flow."
    )


def _context_to_resume(recorded: Recorded | None, context: str | None) -> Any:
    """The context `run` was given, unless ``--context`` names another; None for the flow's own."""
    from ..targets import load_context_ref

    if context is not None:
        return load_context_ref(context)
    if recorded is not None and recorded.context is not None:
        return load_context_ref(recorded.context, recorded.folder)
    return None


def _orphans_flows(st: Store) -> list[Any]:
    """The flows of the jobs whose process is gone, each from the code `run` recorded for it.

    An action, like `resume`: it runs that code. A flow whose code moved is skipped with a
    line saying so, and the other flows' jobs are still recovered.
    """
    from ..targets import TargetError, load_target

    names = {st.job(job_id).flow for job_id in st.orphaned_jobs(LEASE, time.time())}
    flows = []
    for name in sorted(names):
        recorded = _recorded(st, name)
        if recorded is None:
            continue
        try:
            flows.append(_in_recorded_context(st, load_target(recorded.target, recorded.folder)))
        except (TargetError, ContextProfileError) as exc:
            err.print(
                f"skipping flow '{escape(name)}': {escape(str(exc))} (pass --target to recover its jobs)",
                highlight=False,
            )
    return flows


def _in_recorded_context(st: Store, flow: Any) -> Any:
    """``flow`` with the context `run` was given for it, if any (a flow of its own, not the module's)."""
    from ..targets import load_context_ref

    recorded = _recorded(st, flow.name)
    if recorded is None or recorded.context is None:
        return flow
    own = flow.named(flow.name)
    own.context = load_context_ref(recorded.context, recorded.folder)
    return own


def _recover_all(worker: Any) -> list[Any]:
    """Recover the worker's orphaned jobs and print one line per job: its output or its error."""
    jobs = worker.recover()
    for job in jobs:
        try:
            outcome = json_line(job.result())
        except AetherFlowError as exc:
            logs.failures.printed.add(str(exc))
            outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        print(f"{job.id[:12]} {job.flow.name} {job.status.value} {outcome}")
    return list(jobs)
