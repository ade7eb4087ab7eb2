"""PostgresStore: the `Store` protocol on an asyncpg pool.

The work is done by small modules (reads, writes, gc); this class holds the pool and the
configuration and owns the background garbage collector.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import asyncpg

from authz_service.errors import FailedPrecondition
from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipKind,
    RelationshipUpdate,
    Revision,
)
from authz_service.store.postgres import gc, reads, writes
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import connecting, translated
from authz_service.store.postgres.keys import PostgresKeyStore
from authz_service.store.postgres.migrations import latest_version
from authz_service.store.postgres.replicas import ReplicaSet, ReplicaStats
from authz_service.store.postgres.scim import PostgresScimRecords
from authz_service.store.postgres.service_accounts import PostgresServiceAccounts
from authz_service.store.postgres.tenants import PostgresTenants
from authz_service.store.protocol import Change, Precondition, SchemaRecord, WholeResources
from authz_service.store.routing import primary_only

if TYPE_CHECKING:
    Pool = asyncpg.Pool[asyncpg.Record]

__all__ = ["DEFAULT_RETENTION", "PostgresStore", "connect", "server_settings"]

DEFAULT_RETENTION = timedelta(hours=24)
KEEPALIVE_IDLE_S = 30  # seconds without traffic before the first probe
KEEPALIVE_INTERVAL_S = 10  # seconds between unanswered probes
KEEPALIVE_COUNT = 3  # unanswered probes before the connection counts as dead


class PostgresStore:
    """Implements `authz_service.store.protocol.Store` on PostgreSQL. Create with
    `connect()`; `close()` stops the garbage collector and closes the pool.

    With `replicas`, relationship reads go to a hot standby that has replayed their
    revision, and to the primary otherwise or in a fully_consistent call (`replicas.py`,
    `store/routing.py`); everything else goes to the primary."""

    def __init__(
        self,
        db: Database,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        replicas: ReplicaSet | None = None,
    ) -> None:
        self._db = db
        self._replicas = replicas
        self.retention = retention
        self.keys = PostgresKeyStore(db)
        self.tenants = PostgresTenants(db)
        self.scim = PostgresScimRecords(db)
        self.service_accounts = PostgresServiceAccounts(db)
        self._gc: gc.GarbageCollector | None = None

    @property
    def pool(self) -> Pool:
        """The asyncpg pool (for tools such as the importer; the engine never needs it)."""
        return self._db.pool

    @property
    def db(self) -> Database:
        return self._db

    def replica_stats(self) -> list[ReplicaStats]:
        return self._replicas.stats() if self._replicas is not None else []

    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> list[Relationship]:
        if self._replicas is not None and not primary_only():
            found = await self._replicas.read(tenant, revision, flt, limit=limit, after=after)
            if found is not None:
                return found
        return await reads.read(self._db, tenant, revision, flt, limit=limit, after=after)

    async def write(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        *,
        preconditions: Sequence[Precondition] = (),
        idempotency_key: str | None = None,
    ) -> Revision:
        return await writes.write(self._db, tenant, updates, preconditions, idempotency_key)

    async def delete(
        self,
        tenant: str,
        flt: RelationshipFilter,
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, int]:
        return await writes.delete(self._db, tenant, flt, preconditions)

    async def apply(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        deletes: Sequence[RelationshipFilter | WholeResources] = (),
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, list[Relationship]]:
        return await writes.apply(self._db, tenant, updates, deletes, preconditions)

    async def head_revision(self, tenant: str) -> Revision:
        return await reads.head_revision(self._db, tenant)

    async def heads(self, tenant: str) -> tuple[Revision, int]:
        return await reads.heads(self._db, tenant)

    async def check_revision(self, tenant: str, revision: Revision) -> Revision:
        return await reads.check_revision(self._db, tenant, revision, self.retention)

    async def changes(self, tenant: str, after: Revision, *, limit: int = 1000) -> list[Change]:
        return await reads.changes(self._db, tenant, after, limit=limit)

    async def changes_page(
        self, tenant: str, after: Revision, *, within: Relationship | None = None, limit: int
    ) -> list[Change]:
        return await reads.changes_page(self._db, tenant, after, within=within, limit=limit)

    async def write_schema(self, version: str, text: str) -> SchemaRecord:
        return await writes.write_schema(self._db, version, text)

    async def read_schema(self, version: str | None = None) -> SchemaRecord | None:
        return await reads.read_schema(self._db, version)

    async def relationship_kinds(self) -> set[RelationshipKind]:
        return await reads.relationship_kinds(self._db)

    async def role_grants(self) -> dict[str, tuple[str, str]]:
        return await reads.role_grants(self._db)

    async def collect_garbage(self, retention: timedelta | None = None) -> gc.GcResult:
        """Delete history older than `retention` (default: the store's) now, unless
        another replica is collecting."""
        return await gc.collect_garbage(self._db, retention or self.retention)

    def start_gc(
        self, interval: float = 300.0, retention: timedelta | None = None
    ) -> gc.GarbageCollector:
        """Collect every `interval` seconds in the background until `stop_gc()`/`close()`."""
        if self._gc is None:
            seconds = (retention or self.retention).total_seconds()
            self._gc = gc.GarbageCollector(self, interval_s=interval, retention_s=seconds)
            self._gc.start()
        return self._gc

    async def stop_gc(self) -> None:
        collector, self._gc = self._gc, None
        if collector is not None:
            await collector.stop()

    async def close(self) -> None:
        await self.stop_gc()
        if self._replicas is not None:
            await self._replicas.aclose()
        await self._db.close()


def server_settings(statement_timeout_ms: int) -> dict[str, str]:
    """Session settings of every pooled connection. TCP keepalives on the server's
    socket let PostgreSQL notice, within about a minute, a client that vanished behind a
    network that drops packets, and roll back what it held (by default the kernel waits
    two hours); they do nothing over a Unix socket."""
    settings = {
        "tcp_keepalives_idle": str(KEEPALIVE_IDLE_S),
        "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL_S),
        "tcp_keepalives_count": str(KEEPALIVE_COUNT),
    }
    if statement_timeout_ms > 0:
        settings["statement_timeout"] = str(statement_timeout_ms)
        settings["idle_in_transaction_session_timeout"] = str(statement_timeout_ms)
    return settings


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """The store never leaves session state on a pooled connection (no SET, LISTEN or
    session locks outlive a call; asyncpg still rolls back an open transaction), so the
    default reset round trip on every release is skipped. Without that round trip a
    connection whose session the server ended while it was held goes back to the pool
    until its socket's end is read; its next statement fails before sending anything,
    and `Database.acquire` ends it (as happens anyway when the session ends while the
    connection is idle in the pool, where no reset runs)."""


async def connect(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    retention: timedelta = DEFAULT_RETENTION,
    acquire_timeout: float = 5.0,
    connect_timeout: float = 5.0,
    command_timeout: float | None = None,
    statement_timeout_ms: int = 0,
    check_schema: bool = True,
    replica_dsns: Sequence[str] = (),
    replica_max_lag_s: float = 1.0,
) -> PostgresStore:
    """Open a pool on `dsn`. Raises Unavailable if the database cannot be reached,
    FailedPrecondition if it refuses the connection (no such database or role) or if its
    schema is older than this build (run `authz migrate`), and InvalidArgument if `dsn`
    does not parse.

    `statement_timeout_ms` (0: none) makes PostgreSQL itself end any statement, and any
    transaction left idle, that runs longer: the server's side of a call whose client is
    gone (the service gives up at the call's deadline, but the server would otherwise
    keep working, and keep the tenant's write lock). Bulk loads lift it for their own
    transaction (`bulk.py`).

    `replica_dsns` name hot standbys of this primary for relationship reads; one that
    is down or more than `replica_max_lag_s` behind is skipped (`replicas.py`)."""
    open_pool = functools.partial(
        _open_pool,
        max_size=max_size,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        statement_timeout_ms=statement_timeout_ms,
    )
    with translated(), connecting():
        pool = await open_pool(dsn, min_size=min_size)
    db = Database(pool, acquire_timeout=acquire_timeout)
    replicas: ReplicaSet | None = None
    try:
        if check_schema:
            await _check_schema(db)
        if replica_dsns:
            # Replica pools open no connection up front: a replica down at start only
            # leaves the reads on the primary until it answers a probe.
            replicas = ReplicaSet(
                db,
                replica_dsns,
                functools.partial(open_pool, min_size=0),
                max_lag_s=replica_max_lag_s,
            )
            await replicas.start()
    except BaseException:
        if replicas is not None:
            await replicas.aclose()
        await pool.close()
        raise
    return PostgresStore(db, retention=retention, replicas=replicas)


async def _open_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    connect_timeout: float,
    command_timeout: float | None,
    statement_timeout_ms: int,
) -> Pool:
    pool: Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=connect_timeout,
        command_timeout=command_timeout,
        reset=_no_reset,
        server_settings=server_settings(statement_timeout_ms),
    )
    return pool


async def _check_schema(db: Database) -> None:
    version = 0
    if await db.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        version = await db.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    if version < latest_version():
        raise FailedPrecondition(
            f"database schema is at version {version}, this build needs {latest_version()}: "
            "run `authz migrate`"
        )
