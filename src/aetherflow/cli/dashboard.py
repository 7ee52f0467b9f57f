"""``aetherflow ui``: serve the run dashboard (extra ``aetherflow[ui]``)."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import DEFAULT_STORE, StoreOpt, UsageError, _open
from .output import err


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

        from ..ui.app import TOKEN_ENV, create_app
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
