"""``aetherflow ui``: serve the run dashboard (extra ``aetherflow[ui]``).

The socket is bound before the server starts, so the printed URL (with the port a
``--port 0`` got) answers as soon as it is printed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from .options import UsageError, open_to_write, store_option
from .output import err

if TYPE_CHECKING:
    import socket


@click.command()
@store_option
@click.option("--host", default="127.0.0.1", help="Address to listen on; anything but loopback needs a token.")
@click.option("--port", type=int, default=8765, help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a browser.")
@click.option(
    "--token", help="Required on every request (or set AETHERFLOW_UI_TOKEN); needed for a non-loopback --host."
)
def ui(store: str, host: str, port: int, open_browser: bool, token: str | None) -> None:
    """Serve the run dashboard: jobs, graphs, timelines, state, flows and workers, in a browser."""
    try:
        import uvicorn

        from ..ui.app import TOKEN_ENV, create_app
    except ImportError as exc:
        raise UsageError(f"The dashboard needs the 'ui' extra: pip install 'aetherflow[ui]' ({exc}).") from None
    token = token or os.environ.get(TOKEN_ENV) or None
    if not _is_loopback(host) and not token:
        raise UsageError(
            f"--host {host} exposes the dashboard beyond this machine: give a token with --token or {TOKEN_ENV}."
        )
    application = create_app(open_to_write(store), token=token)
    sock = _listening(host, port)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}/"
    err.print(f"AetherFlow dashboard on {url} (store {store}); Ctrl-C stops it", highlight=False, markup=False)
    print(url, flush=True)
    if open_browser:
        _open_soon(url + (f"?token={token}" if token else ""))
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", access_log=False))
    server.run(sockets=[sock])


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (a name other than localhost is not)."""
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listening(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; a port in use is a usage error."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise UsageError(f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port.") from None
    sock.listen(128)  # connections made from now on wait for the server
    return sock


def _open_soon(url: str) -> None:
    """Open ``url`` in a browser half a second from now, once the server has started."""
    import threading
    import webbrowser

    opener = threading.Timer(0.5, webbrowser.open, args=(url,))
    opener.daemon = True
    opener.start()
