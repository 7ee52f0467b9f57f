"""Who may use the dashboard: the token every request carries, and forms checked against CSRF."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

TOKEN_ENV = "AETHERFLOW_UI_TOKEN"


class TokenCheck(BaseHTTPMiddleware):
    """Every request carries the token: ``Authorization: Bearer``, the cookie, or ``?token=`` once (then a cookie)."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = (
            request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            or request.cookies.get("aetherflow_token")
            or ""
        )
        from_query = request.query_params.get("token", "")
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return await call_next(request)
        if from_query and hmac.compare_digest(from_query.encode(), self.token.encode()):
            response = RedirectResponse(request.url.remove_query_params("token"), status_code=303)
            response.set_cookie(
                "aetherflow_token",
                self.token,
                httponly=True,
                samesite="strict",
                max_age=int(timedelta(days=30).total_seconds()),
            )
            return response
        return PlainTextResponse(
            f"This dashboard needs its token: open it with ?token=... once, or send 'Authorization: Bearer ...' (the token given with --token or {TOKEN_ENV}).",
            status_code=401,
        )


async def checked_form(request: Request, csrf: str) -> dict[str, str] | Response:
    """The posted form's fields, or a 403 if it lacks the dashboard's CSRF token or comes from another origin."""
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, csrf):
        return PlainTextResponse(
            "Refused: this form is stale or did not come from the dashboard (CSRF check failed); reload the page and try again.",
            status_code=403,
        )
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host"):
        return PlainTextResponse("Refused: cross-origin request.", status_code=403)
    return {k: v for k, v in form.items() if isinstance(v, str)}
