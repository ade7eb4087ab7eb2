"""RevisionTracker: heads from LISTEN/NOTIFY, freshness from heartbeats, polling when
notifications are off, and reconnection after its connection is killed."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.store.postgres import PostgresStore, RevisionTracker
from authz_service.store.postgres.notify import APPLICATION_NAME


def touch(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(text))


def head(tracker: RevisionTracker, tenant: str) -> int:
    known = tracker.known_head(tenant)
    assert known is not None
    return known[0]


async def learned_within(
    tracker: RevisionTracker, tenant: str, revision: int, seconds: float
) -> float:
    """Seconds until the tracker knows `revision`; fails after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        known = tracker.known_head(tenant)
        if known is not None and known[0] >= revision:
            return time.monotonic() - started
        await asyncio.sleep(0.005)
    raise AssertionError(f"tracker did not learn revision {revision} in {seconds}s")


async def test_the_tracker_learns_other_writers_heads_promptly(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    await pg_store.write("before", [touch("doc:one#viewer@user:ann")])
    tracker = RevisionTracker(pg_dsn, heartbeat_interval=0.05)
    assert tracker.known_head("acme") is None
    assert await tracker.start()
    try:
        assert head(tracker, "before") == 1
        assert head(tracker, "acme") == 0  # never wrote
        delays = []
        for i in range(10):
            revision = await pg_store.write("acme", [touch(f"doc:d{i}#viewer@user:ann")])
            delays.append(await learned_within(tracker, "acme", revision, 2.0))
        assert sorted(delays)[5] < 0.1
    finally:
        await tracker.aclose()


async def test_an_idle_tenants_head_stays_fresh(pg_store: PostgresStore, pg_dsn: str) -> None:
    await pg_store.write("acme", [touch("doc:one#viewer@user:ann")])
    tracker = RevisionTracker(pg_dsn, heartbeat_interval=0.05)
    await tracker.start()
    try:
        started = time.monotonic()

        async def refreshed() -> bool:
            known = tracker.known_head("acme")
            return known is not None and known[0] == 1 and known[1] > started

        # No write happens: only the heartbeat can move `learned_at` past `started`.
        async with asyncio.timeout(10):
            while not await refreshed():  # noqa: ASYNC110 - polls the tracker's state
                await asyncio.sleep(0.02)
    finally:
        await tracker.aclose()


async def test_polling_mode_learns_heads_without_notifications(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    tracker = RevisionTracker(pg_dsn, listen=False, poll_interval=0.1)
    await tracker.start()
    try:
        revision = await pg_store.write("acme", [touch("doc:one#viewer@user:ann")])
        assert await learned_within(tracker, "acme", revision, 2.0) < 1.0
    finally:
        await tracker.aclose()


async def test_the_tracker_reconnects_after_its_connection_is_killed(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    tracker = RevisionTracker(pg_dsn, heartbeat_interval=0.05, poll_interval=0.1)
    await tracker.start()
    admin = await asyncpg.connect(pg_dsn)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
        assert killed == 1
        stale_since = time.monotonic()
        # a write made while the tracker is away is picked up by the reload on reconnect
        revision = await pg_store.write("acme", [touch("doc:one#viewer@user:ann")])
        await learned_within(tracker, "acme", revision, 3.0)
        known = tracker.known_head("acme")
        assert known is not None
        assert known[1] > stale_since
        assert tracker.connected
    finally:
        await admin.close()
        await tracker.aclose()


async def test_without_its_own_connection_the_tracker_polls_through_the_store(
    pg_store: PostgresStore,
) -> None:
    unreachable = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1
    tracker = RevisionTracker(unreachable, poll_interval=0.1, connect_timeout=1, store=pg_store)
    await tracker.start(wait=2)
    try:
        revision = await pg_store.write("acme", [touch("doc:one#viewer@user:ann")])
        assert await learned_within(tracker, "acme", revision, 3.0) < 1.0
        assert not tracker.connected
    finally:
        await tracker.aclose()


async def test_an_unexpected_failure_of_a_poll_through_the_store_does_not_end_the_tracker(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only database errors were expected from the poll; anything else ended the task,
    and the tracker never learned a head again (every read then paid a round trip)."""
    unreachable = "postgresql://postgres@127.0.0.1:1/postgres"
    real_fetch = pg_store.db.fetch
    failures = 0

    async def fetch_failing_twice(sql: str, *args: object) -> list[asyncpg.Record]:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise RuntimeError("a failure no one planned for")
        return await real_fetch(sql, *args)

    monkeypatch.setattr(pg_store.db, "fetch", fetch_failing_twice)
    tracker = RevisionTracker(unreachable, poll_interval=0.05, connect_timeout=1, store=pg_store)
    try:
        assert await tracker.start(wait=10)
        assert failures == 2
        revision = await pg_store.write("acme", [touch("doc:one#viewer@user:ann")])
        await learned_within(tracker, "acme", revision, 10.0)
    finally:
        await tracker.aclose()


@pytest.mark.parametrize("listen", [True, False], ids=["notified", "polled"])
async def test_the_tracker_tells_of_a_purge_once(
    pg_store: PostgresStore, pg_dsn: str, listen: bool
) -> None:
    """A purge is heard (notified, or found by a reload when notifications are off) and
    each purge is told once, so that the resolver and the tenant directory forget."""
    await pg_store.tenants.create("acme")
    await pg_store.write("acme", [touch("doc:one#viewer@user:ann")])
    tracker = RevisionTracker(pg_dsn, listen=listen, poll_interval=0.05, heartbeat_interval=0.05)
    purged: list[str] = []
    tracker.on_purge(purged.append)
    await tracker.start()
    try:
        await pg_store.tenants.purge("acme")
        async with asyncio.timeout(10):
            while not purged:  # noqa: ASYNC110 - polls the tracker's state
                await asyncio.sleep(0.01)
        await pg_store.tenants.create("acme")  # created again, then written
        revision = await pg_store.write("acme", [touch("doc:two#viewer@user:ann")])
        await learned_within(tracker, "acme", revision, 5.0)
        assert purged == ["acme"]
    finally:
        await tracker.aclose()
