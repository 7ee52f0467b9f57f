"""``aetherflow ui``: the run dashboard (needs the extra ``aetherflow[ui]``).

`create_app(store_url)` builds the Starlette app; this package's ``__init__`` imports no
web framework, so ``import aetherflow`` never loads Starlette.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(store: Any, *, token: str | None = None, cwd: str | None = None) -> Any:
    """The dashboard's ASGI app over a store (a `Store` or a URL); see `aetherflow.ui.app.create_app`."""
    from .app import create_app as make

    return make(store, token=token, cwd=cwd)
