"""A TCP proxy to PostgreSQL that passes every byte at once but delivers the end of a
connection the server closed only when told to.

When PostgreSQL ends a session (an administrator's pg_terminate_backend, DROP DATABASE
WITH FORCE, idle_in_transaction_session_timeout, a shutdown) it sends a FATAL
ErrorResponse and then closes the socket. The client reads the two separately: the
error in one turn of its event loop, the end of the stream in a later one, and on a busy
machine much later. The proxy holds the client in between, for as long as a test needs.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.tcp_proxy import LoopbackProxy


class LateEof(LoopbackProxy):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._server_closed = asyncio.Event()
        self._deliver = asyncio.Event()
        self.accepted = 0

    async def server_closed(self) -> None:
        """Wait until the server closed a connection and everything it sent before is
        in the client's socket."""
        await self._server_closed.wait()

    def deliver_eofs(self) -> None:
        """Close the client's side of every connection the server closed."""
        self._deliver.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        up_reader, up_writer = await self._connect()
        self._run(self._upstream(reader, up_writer))
        self._run(self._downstream(up_reader, writer))

    async def _upstream(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        sink.close()

    async def _downstream(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
        self._server_closed.set()
        await self._deliver.wait()
        sink.close()
