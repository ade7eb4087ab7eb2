"""The pool, as the store's modules use it: bounded waits and translated errors.

asyncpg's `Pool.fetch` waits for a free connection without limit; here every acquire is
bounded by `acquire_timeout`, so an exhausted or unreachable database turns into
`Unavailable` instead of a hung request. Both the wait for a connection and every read
are also bounded by what is left of the call's deadline (`authz_service.deadline`): a
network that silently drops packets never holds a call past it. Writes (`writing`) are
bounded the same way, and say whether their outcome is known when time runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg

from authz_service import deadline
from authz_service.errors import DeadlineExceeded, Unavailable
from authz_service.store.postgres.dberrors import retry_once_if_lost, translated

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Pool = asyncpg.Pool[asyncpg.Record]
    Conn = PoolConnectionProxy[asyncpg.Record]

__all__ = ["CLOSE_GRACE_S", "WRITE_NOT_APPLIED", "WRITE_OUTCOME_UNKNOWN", "Database"]

# How long closing waits for acquired connections to come back before ending them. The
# server has drained its calls by then, so a connection still held belongs to work that
# is stuck (a read on a standby that stopped answering, say): shutdown must not wait on it.
CLOSE_GRACE_S = 5.0

WRITE_NOT_APPLIED = "deadline exceeded before the write committed: nothing was written"
WRITE_OUTCOME_UNKNOWN = (
    "deadline exceeded while the write was committing: it may have been applied;"
    " a retry with the same idempotency key is safe (applied at most once)"
)


class Database:
    def __init__(
        self, pool: Pool, *, acquire_timeout: float = 5.0, outage_log_level: int = logging.WARNING
    ) -> None:
        """`outage_log_level`: how a read that finds the database unavailable is logged."""
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.outage_log_level = outage_log_level

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Conn]:
        """A connection for a transaction; the caller wraps it in `translated()`.

        A connection whose driver lost track of its protocol state is ended, never
        returned to the pool: asyncpg reports that as InternalClientError ("cannot switch
        to state ..."), for example when the server ended the session while the
        connection sat idle in the pool (`dberrors.is_connection_lost`). The check is
        free: no round trip, only an exception handler."""
        left = deadline.remaining()
        wait = self.acquire_timeout if left is None else min(left, self.acquire_timeout)
        async with self.pool.acquire(timeout=wait) as conn:
            try:
                yield conn
            except asyncpg.InternalClientError:
                conn.terminate()
                raise

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run a read; retried once if its connection turned out dead."""

        async def attempt() -> list[asyncpg.Record]:
            async with self.acquire() as conn:
                try:
                    return await conn.fetch(sql, *args, timeout=deadline.remaining())
                except (TimeoutError, asyncio.CancelledError):
                    # Out of time, here or in the caller. Cancelling the statement
                    # politely needs the very network that may just have failed us, and
                    # the release would wait for it: drop the connection instead.
                    conn.terminate()
                    raise

        return await retry_once_if_lost(attempt, self.outage_log_level)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Conn]:
        """A connection in a write transaction, bounded by what is left of the call's
        deadline (unbounded outside a call, as for the import).

        When the deadline passes the connection is dropped at once (a rollback over a
        dead network would hang): any statement still waiting fails. Dropped before the
        COMMIT was sent, nothing was written (DeadlineExceeded); dropped while it was in
        flight, the outcome is unknown and the error says so (Unavailable), never success.
        """
        expired = False
        committing = False
        try:
            with translated():
                async with self.acquire() as conn:

                    def expire() -> None:
                        nonlocal expired
                        expired = True
                        conn.terminate()

                    left = deadline.remaining()
                    timer = (
                        None
                        if left is None
                        else asyncio.get_running_loop().call_later(left, expire)
                    )
                    try:
                        async with conn.transaction():
                            yield conn
                            committing = True  # the transaction's exit sends COMMIT
                    finally:
                        if timer is not None:
                            timer.cancel()
        except (Unavailable, DeadlineExceeded) as exc:
            out_of_time = expired or isinstance(exc, DeadlineExceeded)
            if committing and out_of_time:
                raise Unavailable(WRITE_OUTCOME_UNKNOWN) from exc
            if not out_of_time:
                raise
            raise DeadlineExceeded(WRITE_NOT_APPLIED) from exc

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return row[0] if row is not None else None

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), CLOSE_GRACE_S)
        except TimeoutError:
            self.pool.terminate()
