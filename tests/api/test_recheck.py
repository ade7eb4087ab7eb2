"""api/recheck.py on its own: an open stream re-verifies its credential while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import grpc
import pytest

from authz_service.api.recheck import rechecked, run_rechecked
from authz_service.errors import Unauthenticated

INTERVAL = 0.02


class Aborted(Exception):
    pass


class FakeContext:
    """Records the status a stream was ended with, raising as grpc's abort does."""

    def __init__(self) -> None:
        self.status: grpc.Status | None = None

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise Aborted


class Credential:
    """A verification that counts its calls and fails once revoked."""

    def __init__(self) -> None:
        self.checks = 0
        self.revoked = False
        self._checked = asyncio.Condition()

    async def __call__(self) -> None:
        self.checks += 1
        async with self._checked:
            self._checked.notify_all()
        if self.revoked:
            raise Unauthenticated("api key `k` is revoked")

    async def checked(self, times: int) -> None:
        async with asyncio.timeout(10), self._checked:
            await self._checked.wait_for(lambda: self.checks >= times)


class Source:
    """A stream that sends one response each time `release` is called, else idles."""

    def __init__(self) -> None:
        self.ready: asyncio.Queue[str] = asyncio.Queue()
        self.closed = asyncio.Event()

    async def responses(self) -> AsyncGenerator[str, None]:
        try:
            while True:
                yield await self.ready.get()
        finally:
            self.closed.set()


async def test_a_live_credential_keeps_an_idle_stream_open() -> None:
    source, credential, context = Source(), Credential(), FakeContext()
    stream = rechecked(source.responses(), credential, INTERVAL, context)  # type: ignore[arg-type]
    first = asyncio.ensure_future(anext(stream))
    await credential.checked(3)  # re-checked while nothing was sent
    assert not first.done()
    source.ready.put_nowait("change")
    assert await asyncio.wait_for(first, 10) == "change"
    await stream.aclose()
    assert source.closed.is_set()
    assert context.status is None


async def test_a_revoked_credential_ends_an_idle_stream_unauthenticated() -> None:
    source, credential, context = Source(), Credential(), FakeContext()
    stream = rechecked(source.responses(), credential, INTERVAL, context)  # type: ignore[arg-type]
    source.ready.put_nowait("before")
    assert await asyncio.wait_for(anext(stream), 10) == "before"
    credential.revoked = True
    with pytest.raises(Aborted):
        await asyncio.wait_for(anext(stream), 10)
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in context.status.details
    await asyncio.wait_for(source.closed.wait(), 10)  # the servicer's generator was closed


async def test_a_stream_ends_normally_and_passes_its_errors_on() -> None:
    async def two() -> AsyncGenerator[int, None]:
        yield 1
        yield 2

    async def failing() -> AsyncGenerator[int, None]:
        yield 1
        raise ValueError("from the servicer")

    context = FakeContext()
    got = [r async for r in rechecked(two(), Credential(), 60, context)]  # type: ignore[arg-type]
    assert got == [1, 2]
    stream = rechecked(failing(), Credential(), 60, context)  # type: ignore[arg-type]
    assert await anext(stream) == 1
    with pytest.raises(ValueError, match="from the servicer"):
        await anext(stream)


async def test_a_writing_handler_is_held_to_the_same_rule() -> None:
    credential, context = Credential(), FakeContext()
    stopped = asyncio.Event()

    async def handler() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    credential.revoked = True
    with pytest.raises(Aborted):
        await asyncio.wait_for(run_rechecked(handler(), credential, INTERVAL, context), 10)  # type: ignore[arg-type]
    assert stopped.is_set()
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.UNAUTHENTICATED
