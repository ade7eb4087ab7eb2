"""The gRPC tests here run the real server over a fresh PostgreSQL database per test,
with the fixtures of tests/api; `pg_store` is a PostgresStore on such a database, for the
in-process world of helpers.py."""

from collections.abc import AsyncIterator

import pytest

from authz_service.store.postgres import PostgresStore, connect
from tests.api.conftest import app, channel, pg_dsn

__all__ = ["app", "channel", "pg_dsn", "pg_store"]


@pytest.fixture
async def pg_store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    store = await connect(pg_dsn, min_size=1, max_size=4)
    yield store
    await store.close()
