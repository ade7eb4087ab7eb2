"""The Prometheus scrape endpoint: `GET /metrics` over HTTP/1.1, served on the event loop.

prometheus_client's own server runs in a thread. Serving on the loop instead means the
stats callbacks run on the thread that owns the counters they read, `aclose` returns
at once (the threaded server polls for shutdown every half second), and port 0 is
reported from the bound socket. A scrape renders a few hundred series: about a
millisecond of loop time every scrape interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from authz_service.errors import InvalidArgument, echo

__all__ = ["MetricsEndpoint", "parse_listen"]

log = logging.getLogger(__name__)

_READ_TIMEOUT_S = 10.0
_MAX_HEADER_BYTES = 16 * 1024


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` into (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(
            f"metrics address `{echo(listen)}` is not host:port",
            field="metrics_listen",
            value=listen,
        )
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsEndpoint:
    """Start with `await MetricsEndpoint.start(...)`; `port` is the bound port."""

    def __init__(self, server: asyncio.Server, registry: CollectorRegistry) -> None:
        self._server = server
        self._registry = registry
        self._open: set[asyncio.StreamWriter] = set()
        self.port: int = server.sockets[0].getsockname()[1]

    @classmethod
    async def start(
        cls,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> MetricsEndpoint:
        """Listen on `host:port`, over TLS with `tls` (api/http_tls.py makes it)."""
        endpoint: MetricsEndpoint | None = None

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert endpoint is not None  # connections are accepted only after start returns
            await endpoint._serve(reader, writer)

        server = await asyncio.start_server(
            handle,
            host,
            port,
            limit=_MAX_HEADER_BYTES,
            ssl=tls,
            ssl_handshake_timeout=_READ_TIMEOUT_S if tls else None,
        )
        endpoint = cls(server, registry)
        return endpoint

    async def aclose(self) -> None:
        """Stop listening and drop scrapes in progress (a scraper retries next interval)."""
        self._server.close()
        for writer in self._open:
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body = self._respond(head)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sends no complete request gets nothing
        except ConnectionError:
            pass
        except Exception:
            log.exception("metrics scrape failed")
        finally:
            self._open.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, head: bytes) -> tuple[str, str, bytes]:
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if path != "/metrics":
            return "404 Not Found", "text/plain", b"try /metrics\n"
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"use GET\n"
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        encoder, content_type = choose_encoder(accept)
        body = encoder(self._registry)
        return "200 OK", content_type, body
