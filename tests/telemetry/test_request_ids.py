"""Request ids: taken from `x-request-id` or made, visible to handlers, echoed back."""

from __future__ import annotations

import pytest

from authz_service.telemetry import REQUEST_ID_HEADER, current_request_id, new_request_id
from tests.telemetry.conftest import Harness

pytestmark = pytest.mark.timeout(60)


async def test_caller_request_id_is_used_and_echoed(harness: Harness) -> None:
    call = harness.unary()(b"hi", metadata=((REQUEST_ID_HEADER, "req-42"),))
    reply = await call
    assert reply.decode().split("|")[0] == "req-42"
    assert (REQUEST_ID_HEADER, "req-42") in tuple(await call.trailing_metadata())
    assert harness.echo.seen_request_ids == ["req-42"]


async def test_request_id_is_made_when_missing_and_differs_per_call(harness: Harness) -> None:
    first = await harness.unary()(b"a")
    second = await harness.unary()(b"b")
    ids = [first.decode().split("|")[0], second.decode().split("|")[0]]
    assert all(ids)
    assert ids[0] != ids[1]
    assert current_request_id() is None  # nothing leaked into the test's own context


async def test_request_id_echoed_on_aborted_call(harness: Harness) -> None:
    call = harness.unary()(b"abort", metadata=((REQUEST_ID_HEADER, "req-7"),))
    with pytest.raises(Exception, match="bad `abort`"):
        await call
    assert (REQUEST_ID_HEADER, "req-7") in tuple(await call.trailing_metadata())


async def test_long_request_ids_are_cut(harness: Harness) -> None:
    reply = await harness.unary()(b"x", metadata=((REQUEST_ID_HEADER, "r" * 500),))
    assert reply.decode().split("|")[0] == "r" * 128


def test_new_request_ids_are_unique() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
