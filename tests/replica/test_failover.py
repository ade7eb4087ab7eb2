"""A failover as managed services make one, under a running store: the standby is
promoted, the old primary goes on writing until it dies, the promoted server takes the
primary's address and a fresh standby of it the replica's.

docs/replicas.md: a replica now following the new primary is used again as soon as it
answers probes. The monitor kept the old primary's WAL positions, which the new one had
not reached, so the fresh standby stayed unusable, its lag growing, until the new
primary had written past the old one's last sampled position.

A standby left behind on the old primary, past the point where the new one's history
forked off, must never be read: it may hold transactions the failover lost, whose
revision numbers the new primary reuses for other writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import pytest

from authz_service.store.postgres import PostgresStore, connect
from authz_service.store.postgres.replicas import ReplicaStats
from tests.replica.cluster import Cluster, _Server
from tests.replica.conftest import until

LOST_SEGMENTS = 6


@pytest.fixture
def pair() -> Iterator[Cluster]:
    """A primary and standby of this test's own: the failover ends them."""
    cluster = Cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def execute(server: _Server, sql: str) -> str | None:
    conn = await asyncpg.connect(server.dsn)
    try:
        found: str | None = await conn.fetchval(sql)
        return found
    finally:
        await conn.close()


async def replayed(standby: _Server, position: str) -> None:
    conn = await asyncpg.connect(standby.dsn)
    try:
        async with asyncio.timeout(30):
            while not await conn.fetchval(  # noqa: ASYNC110 - polls another process
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", position
            ):
                await asyncio.sleep(0.01)
    finally:
        await conn.close()


def stats(store: PostgresStore) -> tuple[ReplicaStats, ReplicaStats]:
    follower, left_behind = store.replica_stats()
    return follower, left_behind


def fresh_since(replica: ReplicaStats, instant: float) -> bool:
    """Whether the monitor saw `replica` replay a sample of the primary taken after
    `instant` (its lag is the age of the newest sample it replayed)."""
    return replica.lag_s is not None and replica.lag_s < time.monotonic() - instant


async def test_after_a_failover_the_new_primarys_standby_serves_and_the_old_ones_never(
    pair: Cluster,
) -> None:
    old, promoted = pair.primary, pair.replica
    left_behind = pair.add_standby(old, "left-behind")
    left_behind.start()
    follower_port = promoted.port  # the replica address the store keeps
    store = await connect(
        old.dsn,
        min_size=1,
        max_size=2,
        check_schema=False,
        replica_dsns=[promoted.dsn, left_behind.dsn],
        replica_max_lag_s=1.0,
    )
    try:
        await until(lambda: all(r.usable for r in store.replica_stats()))

        # The standby is promoted; the old primary takes writes it will never see, and
        # the left-behind standby replays them. Each is a WAL segment (16 MB) further:
        # more than the new primary moves on below (a base backup starts a segment).
        await execute(promoted, "SELECT pg_promote(true)")
        await execute(old, "CREATE TABLE lost (g int)")
        for _ in range(LOST_SEGMENTS):
            await execute(old, "INSERT INTO lost VALUES (1)")
            await execute(old, "SELECT pg_switch_wal()::text")
        position = await execute(old, "SELECT pg_current_wal_flush_lsn()::text")
        assert position is not None
        await replayed(left_behind, position)
        # Once the left-behind standby is fresh as of now, the monitor has sampled the
        # old primary's position after the lost writes.
        written = time.monotonic()
        await until(lambda: fresh_since(stats(store)[1], written))
        assert not stats(store)[0].usable  # promoted: no longer a standby

        # The old primary dies; the promoted server takes its address, and a fresh
        # standby of it the address of the replica it was.
        old.stop()
        promoted.stop()
        promoted.port = old.port
        promoted.start()
        follower = pair.add_standby(promoted, "follower")
        follower.port = follower_port
        follower.start()
        started = time.monotonic()

        # The follower is used, measured against the new primary: not by a position
        # the old one sampled before it went (that is only briefly within the lag bound).
        await until(lambda: fresh_since(stats(store)[0], started), within=30.0)
        assert stats(store)[0].usable
        assert not stats(store)[1].usable
        # The new primary writes past the position of the left-behind standby: the
        # follower keeps up, and the left-behind standby, which has stopped replaying,
        # stays out, not vouched for by samples of the new primary it had passed.
        await execute(promoted, "CREATE TABLE kept (g int)")
        for _ in range(LOST_SEGMENTS + 2):
            await execute(promoted, "INSERT INTO kept VALUES (1)")
            await execute(promoted, "SELECT pg_switch_wal()::text")
        written = time.monotonic()
        await until(lambda: fresh_since(stats(store)[0], written))
        assert stats(store)[0].usable
        assert not stats(store)[1].usable
    finally:
        await store.close()
