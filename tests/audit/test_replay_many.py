"""Replayer.replay_many left alone by its reader: a replay that failed afterwards is
never left with its exception unread. ReplayDecisions stopped reading at its deadline
without closing the replays; when the garbage collector then found them with the call's
reference cycle, each failed replay was logged at ERROR as "Task exception was never
retrieved" (the fuzz test's rule: nothing is logged at ERROR)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

from authz_service.errors import DeadlineExceeded
from authz_service.service.replay import Replayer


class _FailingLate(Replayer):
    """The first record replays; the others fail a loop turn later."""

    def __init__(self) -> None:
        pass

    async def replay(self, record: Any, *, explain: bool = False) -> Any:
        if record == 0:
            return "replayed"
        await asyncio.sleep(0)
        raise DeadlineExceeded("the call's deadline passed")


async def _records() -> AsyncIterator[int]:
    for i in range(6):
        yield i


def _replaying() -> bool:
    return any(t.get_coro().__qualname__ == "_FailingLate.replay" for t in asyncio.all_tasks())


async def test_replays_left_alone_leave_no_exception_unread() -> None:
    loop = asyncio.get_running_loop()
    unread: list[Any] = []
    loop.set_exception_handler(lambda _loop, context: unread.append(context.get("message")))
    gc.disable()  # collected below, once the replays have failed
    try:
        call: dict[str, Any] = {}
        call["cycle"] = call  # as a call's frames and its exception's traceback are
        call["replayed"] = _FailingLate().replay_many(_records(), concurrency=4)
        async for _ in call["replayed"]:
            break  # the reader stops, as at a deadline, without closing
        del call
        while _replaying():  # noqa: ASYNC110 - waits for the replays to fail
            await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)  # the generator's own close, scheduled by the collector
    finally:
        gc.enable()
        loop.set_exception_handler(None)
    assert unread == []
