"""Fresh PostgreSQL databases for tests, reusable by any test package.

    async with FreshDatabase() as dsn:          # created, migrated, dropped at exit
        store = await connect(dsn)

The server comes from `AUTHZ_TEST_DATABASE_URL` (default: the local server on
127.0.0.1:5432). Each database gets a random name with the prefix `authz_test_`, and
only that database is ever dropped. The context manager keeps no connection or event
loop state between enter and exit, so a session fixture may enter it in one
`asyncio.run()` and leave it in another.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from authz_service.store.postgres import migrate as run_migrations

__all__ = ["DEFAULT_ADMIN_URL", "FreshDatabase", "admin_url", "run_aside", "with_database"]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

R = TypeVar("R")


def run_aside(coro: Coroutine[Any, Any, R]) -> R:
    """Run `coro` to completion on a new loop in a helper thread. Module- and
    session-scoped fixtures use it: they may be set up while a test's loop is running,
    where asyncio.run() is refused, and they must not hold objects of a test's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def admin_url() -> str:
    return os.environ.get("AUTHZ_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class FreshDatabase:
    def __init__(self, prefix: str = "authz_test", *, migrate: bool = True) -> None:
        self.name = f"{prefix}_{secrets.token_hex(6)}"
        self.admin = admin_url()
        self.dsn = with_database(self.admin, self.name)
        self._migrate = migrate

    async def __aenter__(self) -> str:
        conn = await asyncpg.connect(self.admin, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        if self._migrate:
            await run_migrations(self.dsn)
        return self.dsn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = await asyncpg.connect(self.admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()
