"""Forward-only numbered migrations: `migrations/NNNN_name.sql`, applied in order.

Each pending file runs in its own transaction together with its row in
`schema_migrations`, so a failed migration leaves nothing behind. A session advisory
lock makes replicas that start together take turns: the first applies, the others then
find nothing pending. Files are package data, found through importlib.resources.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import asyncpg

from authz_service.store.postgres.dberrors import connecting, translated

__all__ = ["MIGRATIONS_LOCK_KEY", "Migration", "available", "latest_version", "migrate"]

logger = logging.getLogger("authz_service.store.postgres.migrations")

MIGRATIONS_LOCK_KEY = 0x617574687A_6D6967  # "authz" "mig"

_NAME_RE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@cache
def available() -> tuple[Migration, ...]:
    """Every migration shipped with this build, in order; numbering must be 1, 2, 3..."""
    folder = resources.files("authz_service.store.postgres") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME_RE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n: {[m.version for m in found]}")
    return tuple(found)


def latest_version() -> int:
    return available()[-1].version


async def migrate(dsn: str, *, connect_timeout: float = 10.0) -> list[Migration]:
    """Apply pending migrations to the database at `dsn`; returns those applied."""
    with translated(), connecting():
        conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    try:
        with translated():
            return await _migrate(conn)
    finally:
        await conn.close()


async def _migrate(conn: asyncpg.Connection) -> list[Migration]:
    # Held for the whole run and released by close() even if a migration fails.
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK_KEY)
    await conn.execute(_BOOKKEEPING)
    applied = {
        row["version"]: row["checksum"]
        for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    done: list[Migration] = []
    for migration in available():
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                logger.warning(
                    "migration %04d_%s changed after it was applied; edits are not re-run",
                    migration.version,
                    migration.name,
                )
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        logger.info("applied migration %04d_%s", migration.version, migration.name)
        done.append(migration)
    newer = sorted(v for v in applied if v > latest_version())
    if newer:
        # Migrations stay backward compatible, so an older replica may keep running.
        logger.warning("database has migrations newer than this build: %s", newer)
    return done
