"""A call whose deadline has passed fails as DEADLINE_EXCEEDED, not as a database outage:
the database is fine, the caller's time is up (and clients retry UNAVAILABLE, which would
be wrong here)."""

from __future__ import annotations

import time

import pytest

from authz_service import deadline
from authz_service.errors import DeadlineExceeded
from authz_service.model import RelationshipFilter, RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.store.postgres import PostgresStore

GRANT = parse_relationship("document:readme#viewer@user:alice")


async def test_a_read_out_of_time_is_deadline_exceeded(pg_store: PostgresStore) -> None:
    revision = await pg_store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
    with deadline.within(time.monotonic()), pytest.raises(DeadlineExceeded):
        await pg_store.read("acme", revision, RelationshipFilter())
    assert await pg_store.read("acme", revision, RelationshipFilter()) == [GRANT]


async def test_a_write_out_of_time_is_deadline_exceeded_and_not_applied(
    pg_store: PostgresStore,
) -> None:
    with deadline.within(time.monotonic()), pytest.raises(DeadlineExceeded):
        await pg_store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
    head = await pg_store.head_revision("acme")
    assert await pg_store.read("acme", head, RelationshipFilter()) == []
