"""SCIM resources in PostgreSQL (table `scim_resources`, migration 0007) and each
tenant's sync status (`scim_sync`, migration 0009): the `ScimRecords` of PostgresStore.
Versions are compared inside the statement, so two writers racing on one resource cannot
both succeed; a sync note older than the stored one is ignored the same way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from authz_service.errors import AlreadyExists, echo
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import translated
from authz_service.store.scim import ScimRecord, ScimSync, VersionConflict

__all__ = ["PostgresScimRecords"]

_COLUMNS = "kind, resource_id, unique_name, document, version, created, modified"
# A note is written only if the tenant is not deleted, reading its row FOR SHARE: a purge
# holds it FOR UPDATE until it commits, so a note either lands before the purge (which
# then deletes it) or waits and sees the tenant deleted. A name with no tenant row (stores
# used without the registry) is noted as before.
_LIVE = """
WITH tenant AS (SELECT state FROM tenants WHERE tenant = $1 FOR SHARE)
"""
_UNLESS_DELETED = "WHERE NOT EXISTS (SELECT 1 FROM tenant WHERE state = 'deleted')"
# GREATEST ignores NULL, so the first push of a tenant is taken as is.
_NOTE_PUSH = f"""{_LIVE}
INSERT INTO scim_sync (tenant, last_push) SELECT $1, $2::timestamptz {_UNLESS_DELETED}
ON CONFLICT (tenant) DO UPDATE SET last_push = GREATEST(scim_sync.last_push, EXCLUDED.last_push)
"""
_NOTE_ERROR = f"""{_LIVE}
INSERT INTO scim_sync (tenant, last_error_time, last_error)
    SELECT $1, $2::timestamptz, $3::text {_UNLESS_DELETED}
ON CONFLICT (tenant) DO UPDATE
    SET last_error_time = EXCLUDED.last_error_time, last_error = EXCLUDED.last_error
    WHERE scim_sync.last_error_time IS NULL OR scim_sync.last_error_time <= EXCLUDED.last_error_time
"""


def _record(row: Any) -> ScimRecord:
    return ScimRecord(
        kind=row["kind"],
        resource_id=row["resource_id"],
        unique_name=row["unique_name"],
        document=json.loads(row["document"]),
        version=row["version"],
        created=row["created"],
        modified=row["modified"],
    )


class PostgresScimRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, tenant: str, kind: str, resource_id: str) -> ScimRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM scim_resources "
            f"WHERE tenant = $1 AND kind = $2 AND resource_id = $3",
            tenant,
            kind,
            resource_id,
        )
        return None if row is None else _record(row)

    async def list(self, tenant: str, kind: str) -> Sequence[ScimRecord]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM scim_resources WHERE tenant = $1 AND kind = $2 "
            f"ORDER BY resource_id",
            tenant,
            kind,
        )
        return [_record(row) for row in rows]

    async def put(self, tenant: str, record: ScimRecord, expected_version: int | None) -> None:
        args: list[Any] = [
            tenant,
            record.kind,
            record.resource_id,
            record.unique_name,
            json.dumps(record.document),
            record.version,
            record.created,
            record.modified,
        ]
        if expected_version is None:
            sql = (
                "INSERT INTO scim_resources (tenant, kind, resource_id, unique_name, document, "
                "version, created, modified) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) "
                "ON CONFLICT (tenant, kind, resource_id) DO NOTHING RETURNING 1"
            )
        else:
            sql = (
                "UPDATE scim_resources SET unique_name = $4, document = $5::jsonb, version = $6, "
                "created = $7, modified = $8 "
                "WHERE tenant = $1 AND kind = $2 AND resource_id = $3 AND version = $9 RETURNING 1"
            )
            args.append(expected_version)
        try:
            with translated():
                async with self._db.acquire() as conn:
                    done = await conn.fetchval(sql, *args)
        except AlreadyExists:  # the unique index on unique_name (the primary key is handled)
            raise AlreadyExists(
                f"{record.kind} name `{echo(record.unique_name)}` is already taken"
            ) from None
        if done is None:
            raise VersionConflict(
                f"{record.kind} `{echo(record.resource_id)}` changed meanwhile (expected "
                f"version {expected_version})"
            )

    async def delete(self, tenant: str, kind: str, resource_id: str, expected_version: int) -> None:
        with translated():
            async with self._db.acquire() as conn:
                done = await conn.fetchval(
                    "DELETE FROM scim_resources WHERE tenant = $1 AND kind = $2 "
                    "AND resource_id = $3 AND version = $4 RETURNING 1",
                    tenant,
                    kind,
                    resource_id,
                    expected_version,
                )
        if done is None:
            raise VersionConflict(f"{kind} `{echo(resource_id)}` changed meanwhile")

    async def note_push(self, tenant: str, at: datetime, error: str | None) -> None:
        with translated():
            async with self._db.acquire() as conn:
                if error is None:
                    await conn.execute(_NOTE_PUSH, tenant, at)
                else:
                    await conn.execute(_NOTE_ERROR, tenant, at, error)

    async def sync(self, tenant: str) -> ScimSync:
        row = await self._db.fetchrow(
            "SELECT last_push, last_error_time, last_error FROM scim_sync WHERE tenant = $1",
            tenant,
        )
        if row is None:
            return ScimSync()
        return ScimSync(row["last_push"], row["last_error_time"], row["last_error"])
