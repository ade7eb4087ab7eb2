"""One primary and hot standby for the package (`cluster.py`), started once (a few
seconds) and stopped at the end; each test starts from empty tables with replay running
and the standby up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest

from authz_service.store.postgres import migrate
from tests.pg import run_aside
from tests.replica.cluster import Cluster

TABLES = "relationships, revisions, tenants, idempotency_keys, schemas"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    running = Cluster.start()
    try:
        run_aside(migrate(running.primary.dsn))
        yield running
    finally:
        running.stop()


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait until `condition()` holds (it reads state that another task or process moves)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls the monitor's state, no event
            await asyncio.sleep(0.02)


async def replayed_everything(cluster: Cluster, within: float = 30.0) -> None:
    """Wait until the standby has replayed everything the primary has flushed."""
    primary = await asyncpg.connect(cluster.primary.dsn)
    replica = await asyncpg.connect(cluster.replica.dsn)
    try:
        target = await primary.fetchval("SELECT pg_current_wal_flush_lsn()::text")
        async with asyncio.timeout(within):
            while not await replica.fetchval(  # noqa: ASYNC110 - polls another process
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", target
            ):
                await asyncio.sleep(0.01)
    finally:
        await primary.close()
        await replica.close()


async def set_replay(cluster: Cluster, *, paused: bool) -> None:
    """Pause or resume WAL replay on the standby (it keeps receiving, stops applying)."""
    replica = await asyncpg.connect(cluster.replica.dsn)
    try:
        await replica.execute(
            "SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()"
        )
    finally:
        await replica.close()


@pytest.fixture
async def fresh(cluster: Cluster) -> AsyncIterator[Cluster]:
    if cluster.replica.process is None:
        cluster.replica.start()
    await set_replay(cluster, paused=False)
    primary = await asyncpg.connect(cluster.primary.dsn)
    try:
        await primary.execute(f"TRUNCATE {TABLES}")
    finally:
        await primary.close()
    await replayed_everything(cluster)
    yield cluster
    if cluster.replica.process is None:
        cluster.replica.start()
    await set_replay(cluster, paused=False)
