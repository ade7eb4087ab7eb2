"""A TCP proxy that can turn into a black hole: it keeps accepting connections and
keeps every socket open, but stops forwarding bytes in either direction. That is what a
network that silently drops packets looks like to both ends (no reset, no error)."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class Blackhole:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._dropping = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    def blackhole(self) -> None:
        """From now on nothing passes, on new and existing connections alike."""
        self._dropping = True

    async def __aenter__(self) -> Blackhole:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self._dropping:
            return  # accepted, kept open, never answered
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers.append(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await source.read(65536):
            if self._dropping:
                continue  # swallowed: the peer waits forever for an answer
            sink.write(chunk)
            await sink.drain()
