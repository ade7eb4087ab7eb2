"""A TCP proxy that can turn into a black hole: it keeps accepting connections and
keeps every socket open, but stops forwarding bytes in either direction. That is what a
network that silently drops packets looks like to both ends (no reset, no error)."""

from __future__ import annotations

import asyncio

from tests.tcp_proxy import LoopbackProxy


class Blackhole(LoopbackProxy):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._dropping = False

    def blackhole(self) -> None:
        """From now on nothing passes, on new and existing connections alike."""
        self._dropping = True

    def restore(self) -> None:
        """Let bytes pass again. What was swallowed stays lost, so a connection that was
        waiting for an answer then still waits, as after a real outage; new ones work."""
        self._dropping = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self._dropping:
            return  # accepted, kept open, never answered
        up_reader, up_writer = await self._connect()
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            self._run(self._pipe(source, sink))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while chunk := await source.read(65536):
            if self._dropping:
                continue  # swallowed: the peer waits forever for an answer
            sink.write(chunk)
            await sink.drain()
