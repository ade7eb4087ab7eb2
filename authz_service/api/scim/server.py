"""The SCIM HTTP listener: uvicorn in the server's event loop, started and stopped by
the app (graceful: in-flight requests finish, up to the shutdown grace).

uvicorn's `serve()` would install its own signal handlers; the app owns the signals, so
the server is driven through its startup / main loop / shutdown steps instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import uvicorn

from authz_service.api.scim.app import ScimApp

__all__ = ["ScimServer"]


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise OSError(f"SCIM listen address `{listen[:80]}` is not host:port") from None


class ScimServer:
    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], port: int) -> None:
        self._server = server
        self._task = task
        self.port = port

    @classmethod
    async def start(
        cls, app: ScimApp, listen: str, *, grace_s: float, tls: ssl.SSLContext | None = None
    ) -> ScimServer:
        """Listen on `listen`, over TLS with `tls` (api/http_tls.py makes it)."""
        host, port = _host_port(listen)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=max(1, int(grace_s)),
            # uvicorn would build a context from file names; this one reloads them.
            ssl_context_factory=(lambda _config, _default: tls) if tls else None,
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup()
        except SystemExit:  # uvicorn's answer to a port it could not bind
            raise OSError(f"could not bind SCIM listener {listen[:80]}") from None
        sockets = server.servers[0].sockets
        bound = int(sockets[0].getsockname()[1])
        return cls(server, asyncio.create_task(server.main_loop()), bound)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close."""
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._server.shutdown()
