"""Shutdown is bounded: a resource whose close never finishes is abandoned with an error
logged, and the resources opened before it are still closed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from authz_service.app import Resources


async def test_a_stuck_closer_is_abandoned_and_the_others_still_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[str] = []

    async def first_opened() -> None:
        closed.append("first")

    async def stuck() -> None:
        await asyncio.Event().wait()  # never set: a close that never finishes

    resources = Resources(close_bound_s=0.2)
    resources.closers += [first_opened, stuck]
    with caplog.at_level(logging.ERROR):
        async with asyncio.timeout(20):  # a hang fails here, not at the suite's timeout
            await resources.close()
    assert closed == ["first"]
    assert "stuck" in caplog.text
    assert "abandoned" in caplog.text
