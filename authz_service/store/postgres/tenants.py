"""The tenant registry in PostgreSQL: the `tenants` table (migrations 0001, 0005).

The row that holds a tenant's head (and is its write lock) is also its registry entry,
so a state change is serialized with the tenant's writes: a write either commits before
a suspension's revision or is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authz_service.errors import AlreadyExists, echo
from authz_service.model import RelationshipUpdate, Revision
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import translated
from authz_service.store.postgres.writes import PURGE_CHANNEL, apply_updates, bump_head
from authz_service.store.registry import TenantRecord, TenantState, not_found

__all__ = ["CREATE_SQL", "PostgresTenants"]

_COLUMNS = "tenant, state, created_at, updated_at, head"

# A deleted tenant's row is revived (its head kept); an existing one is left alone.
CREATE_SQL = f"""
INSERT INTO tenants AS t (tenant, head) VALUES ($1, 0)
ON CONFLICT (tenant) DO UPDATE SET state = 'active', created_at = now(), updated_at = now()
 WHERE t.state = 'deleted'
RETURNING {_COLUMNS}
"""


def _record(row: Any) -> TenantRecord:
    return TenantRecord(
        row["tenant"], TenantState(row["state"]), row["created_at"], row["updated_at"], row["head"]
    )


class PostgresTenants:
    """Implements `authz_service.store.registry.TenantRegistry`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str) -> TenantRecord:
        with translated():
            row = await self._db.fetchrow(CREATE_SQL, name)
        if row is None:
            raise AlreadyExists(f"tenant `{echo(name)}` already exists")
        return _record(row)

    async def get(self, name: str) -> TenantRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM tenants WHERE tenant = $1 AND state <> 'deleted'", name
        )
        return None if row is None else _record(row)

    async def list(self, after: str | None, limit: int) -> list[TenantRecord]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM tenants WHERE state <> 'deleted'"
            " AND ($1::text IS NULL OR tenant > $1) ORDER BY tenant LIMIT $2",
            after,
            limit,
        )
        return [_record(row) for row in rows]

    async def set_state(
        self, name: str, state: TenantState, updates: Sequence[RelationshipUpdate]
    ) -> Revision:
        async with self._db.writing() as conn:
            found = await conn.fetchval(
                "SELECT state FROM tenants WHERE tenant = $1 FOR UPDATE", name
            )
            if found is None or found == TenantState.DELETED.value:
                raise not_found(name)
            revision = await bump_head(conn, name, any_state=True)
            await conn.execute(
                "UPDATE tenants SET state = $2, updated_at = now() WHERE tenant = $1",
                name,
                state.value,
            )
            await apply_updates(conn, name, revision, updates)
        return revision

    async def purge(self, name: str) -> None:
        async with self._db.writing() as conn:
            found = await conn.fetchval(
                "SELECT state FROM tenants WHERE tenant = $1 FOR UPDATE", name
            )
            if found is None or found == TenantState.DELETED.value:
                raise not_found(name)
            tables = (
                "relationships",
                "revisions",
                "idempotency_keys",
                "scim_resources",
                "scim_sync",
                "service_accounts",
            )
            for table in tables:
                await conn.execute(f"DELETE FROM {table} WHERE tenant = $1", name)
            # The head skips one revision that has no `revisions` row: an index on
            # another replica that last applied the old head then finds its history
            # gone (check_revision) and reloads instead of keeping purged rows.
            await conn.execute(
                "UPDATE tenants SET state = 'deleted', head = head + 1, updated_at = now()"
                " WHERE tenant = $1",
                name,
            )
            await conn.execute(
                "SELECT pg_notify($2, $1 || ':' || head) FROM tenants WHERE tenant = $1",
                name,
                PURGE_CHANNEL,
            )
