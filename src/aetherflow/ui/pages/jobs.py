"""The Jobs page (``/jobs``): the jobs of a store, filtered, newest first, a page at a time.

Pages are keyset pages: ``before`` is the creation time of the last job shown, so a page
stays right while new jobs arrive. Anything unreadable in the query is dropped, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ...store import JobRecord, Store
from .. import views
from ..dashboard import Dashboard

PAGE = 50
MAX_PAGE = 500


@dataclass(frozen=True)
class JobsQuery:
    """The filters and the page position a Jobs URL asks for."""

    flow: str | None
    status: str | None  # a known status, or None
    prefix: str  # of the job id, lowercase
    since_text: str  # the times as typed, carried into the page's links
    until_text: str
    since: datetime | None
    until: datetime | None
    size: int
    before: str | None  # as given: its presence alone makes the page not the first
    cut: float | None  # ``before`` read as a timestamp: the page holds jobs created earlier
    cut_bound: datetime | None  # just after the cut, for the store's inclusive ``until``

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> JobsQuery:
        before = q.get("before")
        cut, cut_bound = _keyset(before)
        return cls(
            flow=q.get("flow") or None,
            status=_status(q.get("status")),
            prefix=(q.get("id") or "").strip().lower(),
            since_text=q.get("since", ""),
            until_text=q.get("until", ""),
            since=parse_time(q.get("since")),
            until=parse_time(q.get("until")),
            size=_size(q.get("size")),
            before=before,
            cut=cut,
            cut_bound=cut_bound,
        )

    @property
    def upper(self) -> datetime | None:
        """The latest creation time to ask the store for: ``until``, tightened to just after the cut."""
        if self.cut_bound is None:
            return self.until
        return self.cut_bound if self.until is None else min(self.until, self.cut_bound)

    def kept(self) -> dict[str, str]:
        """The filters the page's links carry (the ones given)."""
        given = (
            ("flow", self.flow),
            ("status", self.status),
            ("id", self.prefix),
            ("since", self.since_text),
            ("until", self.until_text),
        )
        return {k: v for k, v in given if v}


def parse_time(text: str | None) -> datetime | None:
    """An ISO time, read as UTC when it names no zone; None when absent or unreadable."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _status(text: str | None) -> str | None:
    return text if text in views.STATUSES else None


def _size(text: str | None) -> int:
    try:
        return max(1, min(MAX_PAGE, int(text if text is not None else PAGE)))
    except ValueError:
        return PAGE


def _keyset(before: str | None) -> tuple[float | None, datetime | None]:
    """``before`` as a timestamp and the time just after it; (None, None) when absent or unreadable."""
    if not before:
        return None, None
    try:
        cut = float(before)
        return cut, datetime.fromtimestamp(cut, tz=UTC) + timedelta(microseconds=1)
    except (ValueError, OverflowError, OSError):
        return None, None


def matching(st: Store, query: JobsQuery) -> list[JobRecord]:
    """Up to one more than a page of the jobs ``query`` asks for (the extra one says a next page exists)."""
    limit = 10_000 if query.prefix else query.size + 3
    found = st.jobs(flow=query.flow, status=query.status, since=query.since, until=query.upper, limit=limit)
    if query.prefix:
        found = [j for j in found if j.id.startswith(query.prefix)]
    if query.cut is not None:  # times are kept to the microsecond: drop the boundary row itself
        found = [j for j in found if j.created_at.timestamp() < query.cut]
    return found[: query.size + 1]


def page(dash: Dashboard, request: Request) -> Response:
    st = dash.store
    query = JobsQuery.parse(request.query_params)
    found = matching(st, query)
    rows = found[: query.size]
    keep = query.kept()
    more = len(found) > query.size
    next_url = (
        "/jobs?" + urlencode({**keep, "before": repr(rows[-1].created_at.timestamp())}) if more and rows else None
    )
    counts = st.status_counts(query.flow)
    live = any(j.status.value in ("running", "pending") for j in rows) or counts.get("running", 0) > 0
    return dash.page(
        "jobs.html",
        request,
        title="Jobs",
        jobs=rows,
        counts=counts,
        total=sum(counts.values()),
        flows=st.flows(),
        flow=query.flow or "",
        status=query.status or "",
        prefix=query.prefix,
        since=query.since_text,
        until=query.until_text,
        next_url=next_url,
        first_url=("/jobs?" + urlencode(keep)) if query.before else None,
        keep=keep,
        live=live,
    )
