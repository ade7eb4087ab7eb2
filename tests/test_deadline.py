"""deadline.within and TenantSlots.hold: the two context managers every call enters."""

from __future__ import annotations

import asyncio

import pytest

from authz_service import deadline
from authz_service.errors import LimitExceeded
from authz_service.service.admission import TenantSlots


def test_within_sets_a_deadline_and_restores_none() -> None:
    assert deadline.current() is None
    with deadline.within(100.0):
        assert deadline.current() == 100.0
    assert deadline.current() is None


def test_an_earlier_deadline_stays_in_force_inside_a_later_one() -> None:
    with deadline.within(100.0):
        with deadline.within(200.0):
            assert deadline.current() == 100.0
        with deadline.within(50.0):
            assert deadline.current() == 50.0
        assert deadline.current() == 100.0
        with deadline.within(None):
            assert deadline.current() == 100.0
    assert deadline.current() is None


def test_within_restores_the_outer_deadline_when_the_body_raises() -> None:
    with deadline.within(100.0):
        with pytest.raises(RuntimeError, match="boom"), deadline.within(10.0):
            raise RuntimeError("boom")
        assert deadline.current() == 100.0


def test_within_is_local_to_its_task() -> None:
    seen: list[float | None] = []

    async def other() -> None:
        seen.append(deadline.current())

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(other())
        with deadline.within(100.0):
            await task  # created before the deadline was set: not inherited
            seen.append(deadline.current())

    asyncio.run(main())
    assert seen == [None, 100.0]


def test_hold_counts_and_refuses_past_the_limit() -> None:
    slots = TenantSlots(2)
    with slots.hold("a"), slots.hold("a"):
        assert slots.in_flight("a") == 2
        with (
            pytest.raises(LimitExceeded, match="already has 2 calls in flight"),
            slots.hold("a"),
        ):
            pass  # never entered
        assert slots.in_flight("a") == 2  # the refused call took nothing
        with slots.hold("b"):  # another tenant's share is its own
            assert slots.in_flight("b") == 1
    assert slots.in_flight("a") == 0
    assert slots.in_flight("b") == 0


def test_hold_gives_its_slot_back_when_the_call_fails() -> None:
    slots = TenantSlots(1)
    with pytest.raises(ValueError, match="the call failed"), slots.hold("a"):
        raise ValueError("the call failed")
    assert slots.in_flight("a") == 0
    with slots.hold("a"):  # the slot is free again
        assert slots.in_flight("a") == 1
