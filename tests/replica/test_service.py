"""The service on a primary and a hot standby, over gRPC: a write's token is honoured
whatever the standby has replayed, and the service keeps answering without it.

The relationship index is off (AUTHZ_INDEX_MAX_ROWS=0) so that every uncached Check
reads the store, which is where replicas serve; with it on, the index follows the
primary's change feed and only its loads read a replica."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from authz_service.app import App
from authz_service.store.postgres import PostgresStore
from authz_service.store.postgres.replicas import ReplicaStats
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, Api
from tests.replica.cluster import Cluster
from tests.replica.conftest import replayed_everything, set_replay, until

TRIALS = 1_000
LAGGING_FROM = TRIALS // 2  # the second half runs with replay paused
LANES = 8  # trials run in this many concurrent sequences, to keep the run short


@asynccontextmanager
async def serving(cluster: Cluster, tmp_path: Path, **overrides: object) -> AsyncIterator[App]:
    settings = server_settings(
        cluster.primary.dsn,
        tmp_path,
        replica_max_lag_ms=500,
        metrics_listen="127.0.0.1:0",
        **{"database_replica_urls": cluster.replica.dsn, "index_max_rows": 0, **overrides},
    )
    running = await start_app(settings, tenants=("acme",))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def app(fresh: Cluster, tmp_path: Path) -> AsyncIterator[App]:
    async with serving(fresh, tmp_path) as running:
        yield running


@pytest.fixture
async def api(app: App) -> AsyncIterator[Api]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        client = Api(channel)
        await client.write_schema()
        yield client


def replica(app: App) -> ReplicaStats:
    assert isinstance(app.store, PostgresStore)
    [stats] = app.store.replica_stats()
    return stats


async def revoke_and_check(api: Api, trial: int, *, grant: bool) -> bool:
    """One trial; whether the check with the revocation's token said ALLOWED (stale)."""
    user = f"user:u{trial}"
    if grant:
        granted = await api.touch("acme", f"document:d#viewer@{user}")
        reply = await api.check("acme", "document:d", "view", user, fresh=granted)
        assert reply.decision == ALLOWED
    revoked = await api.delete("acme", f"document:d#viewer@{user}")
    reply = await api.check("acme", "document:d", "view", user, fresh=revoked)
    return reply.decision == ALLOWED


async def run_trials(api: Api, trials: range, *, grant: bool) -> list[int]:
    """The trials in LANES concurrent lanes (each sequential); the stale ones."""
    lanes = [trials[lane::LANES] for lane in range(LANES)]

    async def lane(numbers: range) -> list[int]:
        return [n for n in numbers if await revoke_and_check(api, n, grant=grant)]

    results = await asyncio.gather(*(lane(numbers) for numbers in lanes))
    return sorted(n for found in results for n in found)


async def test_no_stale_allowed_over_a_thousand_revocations(
    fresh: Cluster, app: App, api: Api
) -> None:
    # First half, replay running: each check lands on the replica or on the primary,
    # depending on whether the replica replayed the write within the call's time.
    stale = await run_trials(api, range(LAGGING_FROM), grant=True)
    # Once replayed, a token's reads are the replica's.
    revoked = await api.delete("acme", "document:d#viewer@user:u0")  # one more revision
    await replayed_everything(fresh)
    served = replica(app).reads
    reply = await api.check("acme", "document:d", "view", "user:u0", fresh=revoked)
    assert reply.decision != ALLOWED
    assert replica(app).reads > served
    # fully_consistent is the primary's answer, even with the replica up to date.
    served = replica(app)
    reply = await api.check("acme", "document:d", "view", "user:u1", full=True)
    assert reply.decision != ALLOWED
    assert (replica(app).reads, replica(app).behind) == (served.reads, served.behind)

    # Second half: every user granted and replayed, then replay paused. The replica keeps
    # every grant; each revocation's token must still be honoured (read on the primary).
    lagging = range(LAGGING_FROM, TRIALS)
    await api.touch("acme", *(f"document:d#viewer@user:u{n}" for n in lagging))
    await replayed_everything(fresh)
    await set_replay(fresh, paused=True)
    before = replica(app)
    stale += await run_trials(api, lagging, grant=False)
    # The replica was tried and refused (not replayed), or skipped for its lag.
    after = replica(app)
    assert after.behind > before.behind or not after.usable
    assert stale == []
    await set_replay(fresh, paused=False)


async def test_stopping_the_replica_leaves_the_service_answering_from_the_primary(
    fresh: Cluster, app: App, api: Api
) -> None:
    granted = await api.touch("acme", "document:d#viewer@user:alice")
    await replayed_everything(fresh)
    assert (
        await api.check("acme", "document:d", "view", "user:alice", fresh=granted)
    ).decision == ALLOWED
    assert replica(app).reads > 0
    fresh.replica.stop()
    for consistency in ({"fresh": granted}, {"full": True}, {}):
        reply = await api.check("acme", "document:d", "view", "user:alice", **consistency)
        assert reply.decision == ALLOWED
    revoked = await api.delete("acme", "document:d#viewer@user:alice")
    reply = await api.check("acme", "document:d", "view", "user:alice", fresh=revoked)
    assert reply.decision != ALLOWED
    await until(lambda: not replica(app).usable)
    reply = await api.check("acme", "document:d", "view", "user:bob", full=True)
    assert reply.decision != ALLOWED
    # Operators see it too.
    assert f'authz_replica_usable{{replica="{replica(app).name}"}} 0.0' in await scrape(app)


async def scrape(app: App) -> str:
    url = f"http://127.0.0.1:{app.telemetry.bound_metrics_port}/metrics"

    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as reply:
            text: str = reply.read().decode()
            return text

    return await asyncio.to_thread(get)


async def test_the_index_loads_from_the_replica_and_follows_the_primary(
    fresh: Cluster, tmp_path: Path
) -> None:
    """With the relationship index on (the default), a tenant's load reads the replica
    and its catch-ups read the primary's change feed: revocations are honoured while the
    replica, which still holds every grant, has replay paused."""
    users = [f"user:u{n}" for n in range(100)]
    async with (
        serving(fresh, tmp_path, index_max_rows=100_000) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        api = Api(channel)
        await api.write_schema()
        granted = await api.touch("acme", *(f"document:d#viewer@{user}" for user in users))
        await replayed_everything(fresh)
        reply = await api.check("acme", "document:d", "view", users[0], fresh=granted)
        assert reply.decision == ALLOWED
        assert app.index is not None
        async with asyncio.timeout(60):  # a load that never ends fails here, named
            assert await app.index.wait_loaded("acme")
        assert replica(app).reads > 0
        await set_replay(fresh, paused=True)
        stale = []
        for user in users:
            revoked = await api.delete("acme", f"document:d#viewer@{user}")
            reply = await api.check("acme", "document:d", "view", user, fresh=revoked)
            if reply.decision == ALLOWED:
                stale.append(user)
        assert stale == []
        assert app.index.applied("acme") is not None  # answered from memory throughout
        assert app.index.stats().memory_reads > 0
