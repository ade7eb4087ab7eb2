"""A loopback TCP proxy's life: listen on a free port, connect each accepted client to
the target, and on exit end every pipe and socket it opened. What passes between the two
sides is the subclass's (`tests/api/blackhole.py`, `tests/store/late_eof.py`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self


class LoopbackProxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> Self:
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
        raise NotImplementedError

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the target, closed on exit."""
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers.append(up_writer)
        return up_reader, up_writer

    def _run(self, pipe: Coroutine[Any, Any, None]) -> None:
        """Run `pipe` until it ends or the proxy exits."""
        task = asyncio.create_task(pipe)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
