"""Migrations: shipped as package data, applied once, in order, by one replica at a time."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from authz_service.errors import FailedPrecondition
from authz_service.store.postgres import connect, migrate
from authz_service.store.postgres.migrations import available, latest_version
from tests.pg import FreshDatabase


def test_migration_files_are_found_as_package_data() -> None:
    found = available()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "initial"
    assert "CREATE TABLE relationships" in found[0].sql


async def test_concurrent_replicas_apply_each_migration_exactly_once() -> None:
    async with FreshDatabase(migrate=False) as dsn:
        results = await asyncio.gather(*(migrate(dsn) for _ in range(4)))
        assert sorted(len(applied) for applied in results) == [0, 0, 0, latest_version()]
        assert await migrate(dsn) == []
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        finally:
            await conn.close()
        assert [r["version"] for r in rows] == list(range(1, latest_version() + 1))


async def test_connect_refuses_a_database_that_is_not_migrated() -> None:
    async with FreshDatabase(migrate=False) as dsn:
        with pytest.raises(FailedPrecondition, match="authz migrate"):
            await connect(dsn, min_size=1, max_size=1)
        await migrate(dsn)
        store = await connect(dsn, min_size=1, max_size=1)
        await store.close()
