"""API keys in PostgreSQL (table `api_keys`, migration 0002): the `KeyStore` of
PostgresStore. Timestamps come from the database's clock, so that creation and
revocation times of all keys are comparable whichever machine ran the command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authz_service.credentials import ApiKey, parse_scopes
from authz_service.errors import AlreadyExists, NotFound, echo
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import retry_once_if_lost, translated

__all__ = ["PostgresKeyStore", "create_key", "get_key", "list_keys", "revoke_key"]

_COLUMNS = "key_id, tenant, scopes, secret_hash, name, created_at, revoked_at"


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        tenant=row["tenant"],
        scopes=parse_scopes(row["scopes"]),
        secret_hash=bytes(row["secret_hash"]),
        created_at=row["created_at"],
        name=row["name"],
        revoked_at=row["revoked_at"],
    )


async def create_key(db: Database, key: ApiKey) -> ApiKey:
    # ON CONFLICT instead of catching the unique violation: the generic translation of
    # that error speaks of relationships.
    with translated():
        async with db.acquire() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO api_keys (key_id, tenant, scopes, secret_hash, name) "
                f"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING "
                f"RETURNING {_COLUMNS}",
                key.key_id,
                key.tenant,
                sorted(s.value for s in key.scopes),
                key.secret_hash,
                key.name,
            )
    if row is None:
        raise AlreadyExists(f"api key `{echo(key.key_id)}` already exists")
    return _key(row)


async def get_key(db: Database, key_id: str) -> ApiKey | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = $1", key_id)
    return None if row is None else _key(row)


async def list_keys(db: Database, tenant: str | None = None) -> list[ApiKey]:
    if tenant is None:
        rows = await db.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, key_id")
    else:
        rows = await db.fetch(
            f"SELECT {_COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, key_id",
            tenant,
        )
    return [_key(row) for row in rows]


async def revoke_key(db: Database, key_id: str) -> ApiKey:
    # Idempotent, so a retry after a lost connection is harmless.
    async def attempt() -> Any:
        async with db.acquire() as conn:
            return await conn.fetchrow(
                f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
                f"WHERE key_id = $1 RETURNING {_COLUMNS}",
                key_id,
            )

    row = await retry_once_if_lost(attempt)
    if row is None:
        raise NotFound(f"api key `{echo(key_id)}` does not exist")
    return _key(row)


class PostgresKeyStore:
    """Implements `authz_service.store.protocol.KeyStore` on the store's pool."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, key: ApiKey) -> ApiKey:
        return await create_key(self._db, key)

    async def get(self, key_id: str) -> ApiKey | None:
        return await get_key(self._db, key_id)

    async def list(self, tenant: str | None = None) -> Sequence[ApiKey]:
        return await list_keys(self._db, tenant)

    async def revoke(self, key_id: str) -> ApiKey:
        return await revoke_key(self._db, key_id)
