"""The job page's actions (``POST /jobs/{id}/cancel`` and ``/resume``), each back to the job's page with a message.

Cancel records a request the owning worker honours within a heartbeat (a suspended job,
which no worker runs, is cancelled here); resume runs ``aetherflow resume`` as a separate
process, which the dashboard keeps so the job's page stays live while it runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...status import JobStatus
from ...store import JobRecord, Store
from ..access import checked_form
from ..dashboard import Dashboard


async def cancel(dash: Dashboard, request: Request) -> Response:
    asked = await _checked(dash, request)
    if isinstance(asked, Response):
        return asked
    record, _ = asked
    st = dash.store
    if record.status is JobStatus.SUSPENDED:  # nothing runs it: record it cancelled here
        st.request_cancel(record.id, time.time(), "dashboard")
        st.set_job_status(
            record.id, JobStatus.CANCELLED, time.time(), error="cancelled from the dashboard while suspended"
        )
        message = "Cancelled."
    elif record.status in (JobStatus.RUNNING, JobStatus.PENDING):
        st.request_cancel(record.id, time.time(), "dashboard")
        message = f"Cancel requested: worker {record.worker} cancels the job at its next heartbeat (running nodes finish first)."
    else:
        message = f"The job is {record.status.value}; nothing to cancel."
    st.flush()
    return _back(record, message)


async def resume(dash: Dashboard, request: Request) -> Response:
    asked = await _checked(dash, request)
    if isinstance(asked, Response):
        return asked
    record, form = asked
    args = resume_args(dash.store, record, form)
    if isinstance(args, str):
        return _back(record, args)
    dash.reap()
    return _back(record, _start(dash, record, args))


async def _checked(dash: Dashboard, request: Request) -> tuple[JobRecord, dict[str, str]] | Response:
    """The job an action names and its form, once the form passed the CSRF check."""
    form = await checked_form(request, dash.csrf)
    if isinstance(form, Response):
        return form
    found = dash.find_job(request, request.path_params["job_id"])
    if isinstance(found, Response):
        return found
    return found, form


def resume_args(st: Store, record: JobRecord, form: dict[str, str]) -> list[str] | str:
    """The ``aetherflow`` arguments that resume the job with the form's answer and inputs; or why not."""
    if st.target_of(record.flow) is None:
        return f"Flow {record.flow!r} has no known code location (it was not started with `aetherflow run`); resume it from Python with worker.resume()."
    args = ["resume", record.id, "--store", st.url]
    answer = form.get("answer", "").strip()
    if answer:
        try:
            json.loads(answer)
        except ValueError:
            answer = json.dumps(answer)  # plain text: a JSON string
        args += ["--answer", answer]
    for line in form.get("inputs", "").splitlines():
        if line.strip():
            if "=" not in line:
                return f"Inputs are one key=value per line; found {line.strip()!r}."
            args += ["--input", line.strip()]
    return args


def _start(dash: Dashboard, record: JobRecord, args: list[str]) -> str:
    """Start ``aetherflow`` with ``args`` in its own session, logging to a file; say where."""
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - handed to the child
        "wb", prefix=f"aetherflow-resume-{record.id[:12]}-", suffix=".log", delete=False
    )
    with log:
        child = subprocess.Popen(
            [sys.executable, "-c", "from aetherflow.cli import main; main()", *args],
            cwd=dash.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    dash.started(record.id, child)
    return f"Resuming in process {child.pid} (log: {log.name})."


def _back(record: JobRecord, message: str) -> Response:
    return RedirectResponse(f"/jobs/{record.id}?" + urlencode({"message": message}), status_code=303)
