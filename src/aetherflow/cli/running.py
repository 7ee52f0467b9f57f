"""The commands that run flows: ``run``, ``resume`` and ``recover``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import AetherFlowError, ContextProfileError
from ..job import JobSuspendedError
from ..sentinels import UNSET
from .logs import _hide_secret_inputs, _log_level, _log_without_secrets, _settings
from .options import DEFAULT_STORE, LEASE, ContextOpt, StoreOpt, UsageError, _full_id, _open
from .output import _json_line, err, escape

if TYPE_CHECKING:
    from ..store import Store


class StillSuspendedError(AetherFlowError):
    """The job paused (exit code 3): not a failure, it waits for `aetherflow resume`."""


def _inputs(pairs: list[str], file: Path | None) -> dict[str, Any]:
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
    from ..progress import progress_bar
    from ..targets import load_context_ref, load_target, record_run
    from ..worker import Worker

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
    from ..targets import load_context_ref, load_target, recorded_run
    from ..worker import Worker

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
    from ..targets import TargetError, load_target, recorded_run
    from ..worker import Worker

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
    from ..targets import load_context_ref, recorded_run

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
