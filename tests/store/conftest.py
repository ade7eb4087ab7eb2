"""Store fixtures: `store` runs a test on every backend; `pg_dsn` is one fresh, migrated
database for the whole session (dropped at the end); `pg_store` is a PostgresStore on it
with every table emptied first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from authz_service.store import MemoryStore, Store
from authz_service.store.index import IndexedStore
from authz_service.store.postgres import PostgresStore, connect
from tests.pg import FreshDatabase, run_aside

TABLES = "relationships, revisions, tenants, idempotency_keys, schemas"


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    # No skip when the server is unreachable: tests/conftest.py guarantees one (local or
    # embedded), so an unreachable server is a failure worth seeing.
    database = FreshDatabase()
    dsn = run_aside(database.__aenter__())
    yield dsn
    run_aside(database.__aexit__(None, None, None))


async def open_clean_store(dsn: str) -> PostgresStore:
    store = await connect(dsn, min_size=1, max_size=4)
    await store.pool.execute(f"TRUNCATE {TABLES}")
    return store


@pytest.fixture
async def pg_store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    store = await open_clean_store(pg_dsn)
    yield store
    await store.close()


@pytest.fixture(params=["memory", "postgres", "indexed-memory", "indexed-postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Each backend, and each wrapped in the in-memory relationship index (which loads a
    tenant on its first read, so the suite's reads are answered from the index)."""
    backend: Store
    if request.param.endswith("memory"):
        backend = MemoryStore()
    else:
        backend = await open_clean_store(request.getfixturevalue("pg_dsn"))
    if request.param.startswith("indexed"):
        backend = IndexedStore(backend, max_rows=100_000, load_inline=True)
    yield backend
    await backend.close()
