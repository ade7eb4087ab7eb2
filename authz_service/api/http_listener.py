"""An HTTP listener (SCIM, the web console): uvicorn in the server's event loop, started
and stopped by the app (graceful: requests in flight finish, up to the shutdown grace).

uvicorn's `serve()` would install its own signal handlers; the app owns the signals, so
the server is driven through its startup / main loop / shutdown steps instead. TLS comes
from api/http_tls.py: the gRPC port's certificate and key, reloaded when they change.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from authz_service.api.http_protocol import BoundedH11Protocol

__all__ = ["HttpListener"]


def _host_port(listen: str, name: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise OSError(f"{name} listen address `{listen[:80]}` is not host:port") from None


class HttpListener:
    def __init__(
        self,
        server: uvicorn.Server,
        task: asyncio.Task[None],
        port: int,
        on_stop: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self._server = server
        self._task = task
        self._on_stop = on_stop
        self.port = port

    @classmethod
    async def start(
        cls,
        app: Any,
        listen: str,
        *,
        name: str,
        grace_s: float,
        tls: ssl.SSLContext | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> HttpListener:
        """Serve the ASGI `app` on `listen`; `name` ("SCIM", "console") is for errors."""
        host, port = _host_port(listen, name)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            # Bounds on how long a request's head may take and on open connections.
            http=BoundedH11Protocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            # The client address is the connection's: the failure backoff counts per
            # address, and uvicorn would otherwise take X-Forwarded-For from any local
            # client, one made-up address per request (docs/auth.md "Failed attempts").
            proxy_headers=False,
            # uvicorn would build a context from file names; this one reloads them.
            ssl_context_factory=(lambda _config, _default: tls) if tls else None,
            timeout_graceful_shutdown=max(1, int(grace_s)),
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup()
        except SystemExit:  # uvicorn's answer to a port it could not bind
            raise OSError(f"could not bind the {name} listener {listen[:80]}") from None
        bound = int(server.servers[0].sockets[0].getsockname()[1])
        return cls(server, asyncio.create_task(server.main_loop()), bound, on_stop)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close. Idempotent."""
        if self._server.should_exit:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._server.shutdown()
        if self._on_stop is not None:
            await self._on_stop()
