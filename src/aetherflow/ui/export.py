"""``aetherflow show JOB --html FILE``: one job's dashboard page as one self-contained file.

The same template as the dashboard's job page, with the stylesheet inlined, no script, no
actions, values shown whole (up to 100,000 characters each), and the records embedded as
JSON for scripts. Nothing is imported from the store: the graph comes from the flow's
recorded topology.
"""

from __future__ import annotations

from markupsafe import Markup

from ..report import script_json
from ..store import Store
from .dashboard import HERE, environment
from .pages.job import job_context


def job_html(store: Store, job_id: str) -> str:
    record = store.job(job_id)
    context = job_context(store, record, limit=100_000)
    runs = context.pop("all_run_records")
    data = {
        "job": {"id": record.id, "flow": record.flow, "status": record.status.value, "error": record.error},
        "runs": [
            {
                "node": r.node,
                "status": r.status.value,
                "thread": r.thread,
                "iteration": r.iteration,
                "attempt": r.attempt,
                "item": r.item,
                "start": r.started_at.timestamp(),
                "end": (r.finished_at or r.started_at).timestamp(),
                "error": r.error,
            }
            for r in runs
        ],
    }
    css = (HERE / "static" / "style.css").read_text()
    return (
        environment(store)
        .get_template("job.html")
        .render(
            export=True,
            css=Markup(css),
            data_json=Markup(script_json(data)),
            path="",
            csrf="",
            live=False,
            message=None,
            **context,
        )
    )
