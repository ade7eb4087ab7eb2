"""Open streams keep proving their credential (docs/auth.md, "Open streams").

A server stream outlives the check made when it opened: a Watch may run for days. While
one is open its key is verified again every `interval` seconds, whether or not the stream
is sending anything (an idle Watch waits for writes). When the key no longer verifies
(revoked, deleted, or the key store cannot say) the stream ends with that status, and no
response goes out after a re-check is due until it has passed.

The servicer's generator runs in one task of its own and hands its responses over
through a small bounded queue; the call's task sends them, and waits for the next one or
for the re-check, whichever comes first. One task per stream (not one per response)
keeps the generator in a single task and context for its whole life, and costs a few
microseconds per response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final

import grpc

from authz_service.api.status import to_status

__all__ = ["rechecked", "run_rechecked"]

Verify = Callable[[], Awaitable[object]]
Context = grpc.aio.ServicerContext[Any, Any]

_AHEAD: Final = 64  # responses the servicer may run ahead of the network (bounded memory)
_END: Final = object()  # the stream is over (normally, or with the error handed over)


async def _verified_or_abort(verify: Verify, context: Context) -> None:
    try:
        await verify()
    except Exception as exc:  # deny by default: whatever went wrong ends the stream
        # grpc-stubs predates abort_with_status on the aio context; it exists at runtime.
        await context.abort_with_status(to_status(exc))  # type: ignore[attr-defined]


async def rechecked(
    responses: AsyncGenerator[Any, None], verify: Verify, interval: float, context: Context
) -> AsyncGenerator[Any, None]:
    """`responses`, while `verify()` keeps passing every `interval` seconds."""
    handoff: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue(_AHEAD)

    async def pump() -> None:
        try:
            async for response in responses:
                await handoff.put((response, None))
            await handoff.put((_END, None))
        except Exception as exc:  # raised again in the call's task (an abort included)
            await handoff.put((_END, exc))
        finally:
            await responses.aclose()  # in this task, where the generator ran

    loop = asyncio.get_running_loop()
    due = loop.time() + interval
    producer = asyncio.create_task(pump())
    try:
        while True:
            item: tuple[Any, BaseException | None] | None = None
            if not handoff.empty():
                item = handoff.get_nowait()
            else:
                try:
                    async with asyncio.timeout_at(due):
                        item = await handoff.get()
                except TimeoutError:
                    pass  # nothing to send yet: only the re-check is due
            if loop.time() >= due:
                await _verified_or_abort(verify, context)
                due = loop.time() + interval
            if item is None:
                continue
            response, error = item
            if error is not None:
                raise error
            if response is _END:
                return
            yield response
    finally:
        producer.cancel()
        await asyncio.wait({producer})


async def run_rechecked(
    work: Awaitable[None], verify: Verify, interval: float, context: Context
) -> None:
    """Await `work` (a handler that writes with `context.write`) under the same rule."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            await _verified_or_abort(verify, context)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
