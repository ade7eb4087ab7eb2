"""Garbage collection and the retention window: history older than the window goes, every
revision inside it still reads exactly, and only one replica collects at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from authz_service.errors import FailedPrecondition
from authz_service.model import RelationshipFilter, RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.store.postgres import PostgresStore
from authz_service.store.postgres.gc import GC_LOCK_KEY

DAY = timedelta(days=1)


def update(op: UpdateOp, text: str) -> RelationshipUpdate:
    return RelationshipUpdate(op, parse_relationship(text))


async def live(store: PostgresStore, revision: int) -> list[str]:
    return [str(r) for r in await store.read("acme", revision, RelationshipFilter())]


async def age_revisions(store: PostgresStore, ages: dict[int, timedelta]) -> None:
    for revision, age in ages.items():
        await store.pool.execute(
            "UPDATE revisions SET committed_at = now() - $2::interval "
            "WHERE tenant = 'acme' AND revision = $1",
            revision,
            age,
        )


async def history(store: PostgresStore) -> None:
    """r1: +aa  r2: +bb  r3: -aa  r4: bb replaced  r5: +cc; r1..r4 committed days ago."""
    await store.write("acme", [update(UpdateOp.TOUCH, "doc:aa#viewer@user:ann")])
    await store.write("acme", [update(UpdateOp.TOUCH, "doc:bb#viewer@user:ann")])
    await store.write("acme", [update(UpdateOp.DELETE, "doc:aa#viewer@user:ann")])
    await store.write("acme", [update(UpdateOp.TOUCH, "doc:bb#viewer@user:ann[vpn]")])
    await store.write("acme", [update(UpdateOp.CREATE, "doc:cc#viewer@user:ann")])
    await age_revisions(store, {1: 4 * DAY, 2: 3 * DAY, 3: 3 * DAY, 4: 2 * DAY})


async def test_revisions_whose_successor_left_the_window_are_refused(
    pg_store: PostgresStore,
) -> None:
    await history(pg_store)  # revisions 1..5, the first four committed days ago
    for old in (0, 1, 2, 3):
        with pytest.raises(FailedPrecondition, match="retention window"):
            await pg_store.check_revision("acme", old)
    await pg_store.check_revision("acme", 4)  # its successor 5 is recent
    await pg_store.check_revision("acme", 5)  # the head


async def test_collection_keeps_every_revision_inside_the_window_exact(
    pg_store: PostgresStore,
) -> None:
    await history(pg_store)
    before = {r: await live(pg_store, r) for r in (4, 5)}
    result = await pg_store.collect_garbage(timedelta(hours=24))
    assert result.ran
    assert result.relationships == 2  # doc:aa (deleted at 3), old doc:bb (replaced at 4)
    assert result.revisions == 4
    assert {r: await live(pg_store, r) for r in (4, 5)} == before
    remaining = await pg_store.pool.fetchval("SELECT count(*) FROM relationships")
    assert remaining == 2
    with pytest.raises(FailedPrecondition):
        await pg_store.check_revision("acme", 3)
    await pg_store.check_revision("acme", 4)
    again = await pg_store.collect_garbage(timedelta(hours=24))
    assert (again.relationships, again.revisions) == (0, 0)


async def test_only_one_replica_collects_at_a_time(pg_store: PostgresStore, pg_dsn: str) -> None:
    other = await asyncpg.connect(pg_dsn)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", GC_LOCK_KEY)
        result = await pg_store.collect_garbage()
        assert not result.ran
        await other.execute("SELECT pg_advisory_unlock($1)", GC_LOCK_KEY)
        assert (await pg_store.collect_garbage()).ran
        # the collector released its lock: another session can take it
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", GC_LOCK_KEY)
    finally:
        await other.close()


async def test_old_idempotency_keys_are_collected(pg_store: PostgresStore) -> None:
    first = await pg_store.write("acme", [], idempotency_key="retry-me")
    assert await pg_store.write("acme", [], idempotency_key="retry-me") == first
    await pg_store.pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '2 days'"
    )
    assert (await pg_store.collect_garbage(DAY)).idempotency_keys == 1
    assert await pg_store.write("acme", [], idempotency_key="retry-me") == first + 1


async def test_the_background_collector_runs_until_the_store_closes(
    pg_store: PostgresStore,
) -> None:
    await history(pg_store)
    collector = pg_store.start_gc(interval=0.05, retention=DAY)
    for _ in range(100):
        if collector.last_result is not None:
            break
        await asyncio.sleep(0.02)
    assert collector.last_result is not None
    assert collector.last_result.relationships == 2
    await pg_store.stop_gc()
    await pg_store.stop_gc()  # idempotent
