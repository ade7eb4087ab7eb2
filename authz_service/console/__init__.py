"""The web console (docs/console.md): Playground, Why and administration pages, served
over HTTP next to the gRPC port, calling that port for everything it shows.

    start_console(...) -> HttpListener    the listener, stopped with `await server.stop()`
"""

from __future__ import annotations

import ssl

from authz_service.api.auth import Authenticator
from authz_service.api.http_listener import HttpListener
from authz_service.console.app import build_app
from authz_service.console.auth import Sessions
from authz_service.console.backend import Backend
from authz_service.console.pages import PAGES

__all__ = ["start_console"]


async def start_console(
    listen: str,
    *,
    target: str,
    authenticator: Authenticator | None,
    grace_s: float,
    deadline_s: float,
    relay: str | None,
    tls: ssl.SSLContext | None = None,
) -> HttpListener:
    """Serve the console on `listen` (over TLS with `tls`, from api/http_tls.py); its
    calls go to the gRPC server at `target`, naming their browsers with the server's
    `relay` secret (api/relay.py), and its in-memory work gets `deadline_s`, the
    server's default deadline, as a call would."""
    backend = Backend.connect(target, deadline_s=deadline_s, relay=relay)
    app = build_app(Sessions(authenticator), backend, PAGES, secure=tls is not None)
    try:
        return await HttpListener.start(
            app,
            listen,
            name="console",
            grace_s=grace_s,
            tls=tls,
            on_stop=backend.close,
        )
    except BaseException:
        await backend.close()
        raise
