"""Closing the store never waits without bound: asyncpg's `Pool.close` waits for every
acquired connection to come back, so one held by work that never finishes (a stuck
background load, a query on a standby that stopped answering) would hang shutdown."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from authz_service.store.postgres import connect


async def test_close_ends_connections_still_held_after_its_grace(pg_dsn: str) -> None:
    store = await connect(pg_dsn, min_size=1, max_size=2)
    pool = store.pool
    held = await pool.acquire()  # never released: the work holding it is stuck
    async with asyncio.timeout(25):  # a hang fails here, not at 300 s
        await store.close()
    assert pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):  # ended, not left open behind the pool
        await held.fetchval("SELECT 1")


async def test_close_is_graceful_when_nothing_is_held(pg_dsn: str) -> None:
    store = await connect(pg_dsn, min_size=1, max_size=2)
    pool = store.pool
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
    await store.close()
    assert pool.is_closing()
