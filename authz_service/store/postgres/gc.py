"""Garbage collection of history older than the retention window.

A row deleted at revision D is needed only by reads at revisions < D. Once D committed
before `now - retention`, every such revision is outside the window (see
`reads.check_revision`), so the row can go. Revision rows committed before the cutoff
and idempotency keys older than it go too.

One replica at a time: a run holds a session advisory lock on one connection and
skips the run if another replica holds it. Deletes run in batches, each its own
transaction, so a long backlog never holds locks for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from authz_service.errors import AuthzError
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import translated

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["GC_LOCK_KEY", "GarbageCollector", "GcResult", "collect_garbage"]

logger = logging.getLogger("authz_service.store.postgres.gc")

GC_LOCK_KEY = 0x617574687A_6763  # "authz" "gc": the advisory lock every replica contends for

_BOUNDS_SQL = """
SELECT tenant, max(revision) AS last
  FROM revisions WHERE committed_at < now() - $1::interval GROUP BY tenant
"""

_DELETE_BATCH_SQL = """
DELETE FROM relationships WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM relationships WHERE tenant = $1 AND deleted_rev <= $2 LIMIT $3))
"""


@dataclass(frozen=True, slots=True)
class GcResult:
    ran: bool  # False when another replica held the lock
    relationships: int = 0
    revisions: int = 0
    idempotency_keys: int = 0


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def collect_garbage(
    db: Database, retention: timedelta, *, batch_size: int = 10_000
) -> GcResult:
    with translated():
        async with db.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", GC_LOCK_KEY):
                return GcResult(ran=False)
            try:
                bounds = await conn.fetch(_BOUNDS_SQL, retention)
                relationships = revisions = 0
                for row in bounds:
                    # committed_at grows with the revision, so "deleted by a revision
                    # committed before the cutoff" is "deleted_rev <= last".
                    while True:
                        deleted = _count(
                            await conn.execute(
                                _DELETE_BATCH_SQL, row["tenant"], row["last"], batch_size
                            )
                        )
                        relationships += deleted
                        if deleted < batch_size:
                            break
                    # Only after the rows: an interrupted run leaves the bound in place.
                    revisions += _count(
                        await conn.execute(
                            "DELETE FROM revisions WHERE tenant = $1 AND revision <= $2",
                            row["tenant"],
                            row["last"],
                        )
                    )
                keys = _count(
                    await conn.execute(
                        "DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval",
                        retention,
                    )
                )
            finally:
                await _unlock(conn)
    return GcResult(True, relationships, revisions, keys)


async def _unlock(conn: PoolConnectionProxy[asyncpg.Record]) -> None:
    try:
        await conn.fetchval("SELECT pg_advisory_unlock($1)", GC_LOCK_KEY)
    except BaseException:
        # A connection that might still hold the lock must not go back to the pool;
        # closing it makes the server release the lock.
        conn.terminate()
        raise


class _Collects(Protocol):
    async def collect_garbage(self, retention: timedelta | None = None) -> GcResult: ...


class GarbageCollector:
    """Runs `store.collect_garbage` every `interval_s` seconds until `stop()`.

    `PostgresStore.start_gc()` creates one that the store owns (its `close()` stops it);
    one created directly belongs to its creator."""

    def __init__(
        self, store: _Collects, *, interval_s: float = 300.0, retention_s: float | None = None
    ) -> None:
        self._store = store
        self._interval = interval_s
        self._retention = None if retention_s is None else timedelta(seconds=retention_s)
        self._task: asyncio.Task[None] | None = None
        self.last_result: GcResult | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="authz-gc")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                self.last_result = await self._store.collect_garbage(self._retention)
                if self.last_result.relationships:
                    logger.info("garbage collection: %s", self.last_result)
            except AuthzError as exc:
                logger.warning("garbage collection failed: %s", exc.message)
            except Exception:
                logger.exception("garbage collection failed")
            await asyncio.sleep(self._interval)
