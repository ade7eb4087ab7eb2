"""How a replica's failures are handled: whatever goes wrong on a replica (refused
logins, a missing database, a refused connection, a probe without answer), its reads go
to the primary, it is skipped until a good probe, and the log says so once per change
of state (docs/replicas.md)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import asyncpg
import pytest

from authz_service.errors import InvalidArgument
from authz_service.model import (
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
)
from authz_service.store.postgres import connect
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.replicas import ReplicaSet, ReplicaStats
from authz_service.store.postgres.writes import write
from tests.api.blackhole import Blackhole
from tests.replica.cluster import Cluster
from tests.replica.conftest import replayed_everything

if TYPE_CHECKING:
    Pool = asyncpg.Pool[asyncpg.Record]

GRANT = Relationship(ObjectRef("doc", "d1"), "viewer", SubjectRef("user", "alice"))
VIEWERS = RelationshipFilter("doc", ("d1",), "viewer")
REPLICAS = "authz_service.store.postgres.replicas"
SERVICE = "authz_service"  # every logger of the service, the store's included


async def open_pool(dsn: str) -> Pool:
    pool: Pool = await asyncpg.create_pool(dsn, min_size=0, max_size=4)
    return pool


@asynccontextmanager
async def replica_set(
    cluster: Cluster, dsn: str, *, timeout_s: float = 1.0
) -> AsyncIterator[ReplicaSet]:
    """A replica set on `dsn` whose monitor never probes by itself (a probe an hour
    away): the test probes, so what a read meets is what the test arranged."""
    primary = Database(await open_pool(cluster.primary.dsn))
    replicas = ReplicaSet(primary, [dsn], open_pool, probe_interval_s=3600, timeout_s=timeout_s)
    try:
        await replicas.start()
        yield replicas
    finally:
        await replicas.aclose()
        await primary.close()


def stats(replicas: ReplicaSet) -> ReplicaStats:
    [replica] = replicas.stats()
    return replica


def reported(caplog: pytest.LogCaptureFixture, level: int, logger: str = REPLICAS) -> list[str]:
    """What `logger` (or one under it) logged at `level` or above."""
    return [
        r.getMessage() for r in caplog.records if r.levelno >= level and r.name.startswith(logger)
    ]


async def granted(cluster: Cluster) -> int:
    """Write the grant on the primary; its revision, once the standby replayed it."""
    primary = Database(await open_pool(cluster.primary.dsn))
    try:
        revision = await write(
            primary, "acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)], (), None
        )
    finally:
        await primary.close()
    await replayed_everything(cluster)
    return revision


@asynccontextmanager
async def reader_role(cluster: Cluster) -> AsyncIterator[str]:
    """A role of its own for the replica's connections, so that the test can take its
    logins away (on the primary, replicated) without touching the other tests'."""
    role = f"reader_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(cluster.primary.dsn)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN IN ROLE pg_read_all_data")
        yield role
    finally:
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def refuse_logins(cluster: Cluster, role: str) -> None:
    """`role` may no longer log in anywhere, and its sessions on the standby end (as after
    a credentials rotation, or a pg_hba change on the standby alone)."""
    admin = await asyncpg.connect(cluster.primary.dsn)
    try:
        await admin.execute(f"ALTER ROLE {role} NOLOGIN")
    finally:
        await admin.close()
    await replayed_everything(cluster)
    standby = await asyncpg.connect(cluster.replica.dsn)
    try:
        await standby.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
    finally:
        await standby.close()


async def test_a_replica_that_refuses_logins_leaves_the_read_to_the_primary(
    fresh: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/replicas.md: a replica's error never reaches the decision. A refused login
    (SQLSTATE class 28) is no error the store maps to Unavailable: it reached the caller
    as INTERNAL, and the replica stayed usable."""
    revision = await granted(fresh)
    async with reader_role(fresh) as role:
        dsn = f"postgresql://{role}@127.0.0.1:{fresh.replica.port}/postgres"
        async with replica_set(fresh, dsn) as replicas:
            assert stats(replicas).usable
            assert await replicas.read("acme", revision, VIEWERS, limit=None, after=None) == [GRANT]
            await refuse_logins(fresh, role)
            caplog.set_level(logging.DEBUG)
            # None: the primary answers.
            assert await replicas.read("acme", revision, VIEWERS, limit=None, after=None) is None
            assert not stats(replicas).usable
            assert stats(replicas).errors == 1
            await replicas.probe()  # still refused: no new state, nothing more to say
            assert not stats(replicas).usable
            [warning] = reported(caplog, logging.WARNING)
            assert "not permitted to log in" in warning
            assert f"127.0.0.1:{fresh.replica.port}/postgres" in warning


async def test_a_probe_refused_a_login_marks_the_replica_unusable(fresh: Cluster) -> None:
    async with reader_role(fresh) as role:
        dsn = f"postgresql://{role}@127.0.0.1:{fresh.replica.port}/postgres"
        async with replica_set(fresh, dsn) as replicas:
            assert stats(replicas).usable
            await refuse_logins(fresh, role)
            await replicas.probe()
            assert not stats(replicas).usable


async def test_a_replica_without_the_database_is_skipped_from_the_start(
    fresh: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """store.py: a replica down at start only leaves the reads on the primary. A URL
    naming a database the standby lacks (SQLSTATE 3D000) stopped the server's start with
    a traceback instead."""
    caplog.set_level(logging.DEBUG)
    dsn = f"postgresql://postgres:hunter2@127.0.0.1:{fresh.replica.port}/no_such_db"
    store = await connect(
        fresh.primary.dsn, min_size=1, max_size=2, replica_dsns=[dsn], replica_max_lag_s=60.0
    )
    try:
        [replica] = store.replica_stats()
        assert not replica.usable
        revision = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
        assert await store.read("acme", revision, VIEWERS) == [GRANT]
    finally:
        await store.close()
    [warning] = reported(caplog, logging.WARNING)
    assert f"127.0.0.1:{fresh.replica.port}/no_such_db" in warning
    assert "does not exist" in warning
    assert not any("hunter2" in r.getMessage() for r in caplog.records)


async def test_a_value_the_database_refuses_is_not_the_replicas_fault(fresh: Cluster) -> None:
    """Check does not refuse a NUL character (it stores nothing); PostgreSQL does, the
    primary as the replica, so the refusal is the caller's, and the replica keeps serving."""
    revision = await granted(fresh)
    async with replica_set(fresh, fresh.replica.dsn) as replicas:
        nul = RelationshipFilter("doc", ("d\x00",), "viewer")
        with pytest.raises(InvalidArgument):
            await replicas.read("acme", revision, nul, limit=None, after=None)
        assert stats(replicas).usable
        assert stats(replicas).errors == 0


async def test_a_replica_that_is_down_is_reported_once_per_change_of_state(
    fresh: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/replicas.md: state changes are logged. A stopped standby also put a WARNING
    `database unavailable: ConnectionRefusedError` in the log for every probe and read,
    about 20 a second."""
    revision = await granted(fresh)
    async with replica_set(fresh, fresh.replica.dsn) as replicas:
        assert stats(replicas).usable
        caplog.set_level(logging.DEBUG)
        fresh.replica.stop()
        assert await replicas.read("acme", revision, VIEWERS, limit=None, after=None) is None
        for _ in range(3):
            await replicas.probe()
        assert not stats(replicas).usable
        [warning] = reported(caplog, logging.WARNING, SERVICE)
        assert "skipped" in warning
        assert "ConnectionRefusedError" in warning or "Connect call failed" in warning
        fresh.replica.start()
        await replayed_everything(fresh)
        await replicas.probe()
        assert stats(replicas).usable
        assert len(reported(caplog, logging.INFO, SERVICE)) == 2  # the warning, then "serves reads"


async def test_a_probe_without_an_answer_says_why(
    fresh: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A probe that timed out was logged as `probe failed: ` and nothing more."""
    async with (
        Blackhole("127.0.0.1", fresh.replica.port) as hole,
        replica_set(
            fresh, f"postgresql://postgres@127.0.0.1:{hole.port}/postgres", timeout_s=0.2
        ) as replicas,
    ):
        assert stats(replicas).usable
        caplog.set_level(logging.DEBUG)
        hole.blackhole()
        await replicas.probe()
        assert not stats(replicas).usable
        [warning] = reported(caplog, logging.WARNING, SERVICE)
        assert warning.rstrip().endswith("no answer within 0.2s"), warning
