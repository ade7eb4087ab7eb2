"""Service accounts in PostgreSQL (table `service_accounts`, migration 0008): the
`ServiceAccounts` of PostgresStore. Times come from the database's clock, like keys'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authz_service.errors import AlreadyExists, echo
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import translated
from authz_service.store.service_accounts import ServiceAccountRecord, account_not_found

__all__ = ["PostgresServiceAccounts"]

_COLUMNS = "tenant, account_id, description, created_at, disabled_at"


def _record(row: Any) -> ServiceAccountRecord:
    return ServiceAccountRecord(
        row["tenant"], row["account_id"], row["description"], row["created_at"], row["disabled_at"]
    )


class PostgresServiceAccounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, tenant: str, account_id: str, description: str) -> ServiceAccountRecord:
        # ON CONFLICT instead of catching the unique violation: the generic translation of
        # that error speaks of relationships.
        async with self._db.writing() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO service_accounts (tenant, account_id, description) "
                f"VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
                tenant,
                account_id,
                description,
            )
        if row is None:
            raise AlreadyExists(
                f"service account `{echo(account_id)}` already exists in tenant `{echo(tenant)}`"
            )
        return _record(row)

    async def get(self, tenant: str, account_id: str) -> ServiceAccountRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM service_accounts WHERE tenant = $1 AND account_id = $2",
            tenant,
            account_id,
        )
        return None if row is None else _record(row)

    async def page(self, tenant: str, after: str, limit: int) -> Sequence[ServiceAccountRecord]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM service_accounts WHERE tenant = $1 AND account_id > $2 "
            f"ORDER BY account_id LIMIT $3",
            tenant,
            after,
            limit,
        )
        return [_record(row) for row in rows]

    async def set_disabled(
        self, tenant: str, account_id: str, disabled: bool
    ) -> ServiceAccountRecord:
        # Idempotent: a second disable keeps the first time, so a retry is harmless.
        with translated():
            row = await self._db.fetchrow(
                f"UPDATE service_accounts SET disabled_at = CASE WHEN $3 "
                f"THEN coalesce(disabled_at, now()) END "
                f"WHERE tenant = $1 AND account_id = $2 RETURNING {_COLUMNS}",
                tenant,
                account_id,
                disabled,
            )
        if row is None:
            raise account_not_found(tenant, account_id)
        return _record(row)

    async def delete(self, tenant: str, account_id: str) -> None:
        async with self._db.writing() as conn:
            row = await conn.fetchrow(
                "DELETE FROM service_accounts WHERE tenant = $1 AND account_id = $2 "
                "RETURNING account_id",
                tenant,
                account_id,
            )
        if row is None:
            raise account_not_found(tenant, account_id)
