"""The requests that once stalled every tenant (issue 10), and a way to race them.

`race` starts the expensive call in one tenant, then a cheap Check in another, and
reports the order in which they finished: a cheap call must never wait for an
expensive one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from tests.api.helpers import ALLOWED, Api


def lattice(levels: int) -> list[str]:
    """Two groups per level, each a member of both groups of the level above: every
    path down is a distinct route to the same groups, 2^levels routes in all."""
    rels = [
        f"group:d{i}{x}#member@group:d{i + 1}{y}#member"
        for i in range(levels)
        for x in "ab"
        for y in "ab"
    ]
    return [*rels, "document:doc#viewer@group:d0a#member"]


@dataclass
class Finished:
    order: list[str]
    expensive: Any  # the reply, or the grpc.aio.AioRpcError it raised
    cheap: Any


async def race(
    api: Api,
    expensive: Awaitable[Any],
    running: Callable[[], bool],
    *,
    tenant: str = "other",
) -> Finished:
    """Send `expensive`, wait until `running()` says the server is working on it, then
    send a Check in `tenant` that must be ALLOWED (`tenant` must hold
    `document:plan#viewer@user:alice`)."""
    order: list[str] = []

    async def run(name: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except grpc.aio.AioRpcError as err:
            return err
        finally:
            order.append(name)

    first = asyncio.ensure_future(run("expensive", expensive))
    # The server shares this event loop: give it turns until it holds the call.
    while not running() and not first.done():  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0)
    cheap = await run("cheap", api.check(tenant, "document:plan", "view", "user:alice"))
    done = await first
    assert not isinstance(cheap, grpc.aio.AioRpcError), cheap
    assert cheap.decision == ALLOWED
    return Finished(order, done, cheap)
