"""API keys in PostgreSQL (table `api_keys`, migrations 0002 and 0006): the `KeyStore` of
PostgresStore. Timestamps come from the database's clock, so that creation and
revocation times of all keys are comparable whichever machine ran the command."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from authz_service.credentials import ApiKey, parse_scopes
from authz_service.errors import AlreadyExists, FailedPrecondition, NotFound, echo
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import retry_once_if_lost, translated
from authz_service.store.postgres.sql import aware

__all__ = [
    "PostgresKeyStore",
    "create_key",
    "get_key",
    "list_keys",
    "page_keys",
    "revoke_key",
    "rotate_key",
    "touch_keys",
]

# The owning service account's disabled time is read with the key (migration 0008), so
# that disabling an account refuses its keys without touching them.
_COLUMNS = (
    "key_id, tenant, scopes, secret_hash, name, created_at, revoked_at, expires_at, "
    "previous_secret_hash, previous_until, last_used_at, service_account, "
    "(SELECT s.disabled_at FROM service_accounts s WHERE s.tenant = api_keys.tenant "
    "AND s.account_id = api_keys.service_account) AS owner_disabled_at"
)


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        tenant=row["tenant"],
        scopes=parse_scopes(row["scopes"]),
        secret_hash=bytes(row["secret_hash"]),
        created_at=row["created_at"],
        name=row["name"],
        revoked_at=row["revoked_at"],
        expires_at=aware(row["expires_at"]),
        previous_hash=None
        if row["previous_secret_hash"] is None
        else bytes(row["previous_secret_hash"]),
        previous_until=row["previous_until"],
        last_used_at=row["last_used_at"],
        service_account=row["service_account"],
        owner_disabled_at=row["owner_disabled_at"],
    )


async def create_key(db: Database, key: ApiKey) -> ApiKey:
    # ON CONFLICT instead of catching the unique violation: the generic translation of
    # that error speaks of relationships.
    with translated():
        async with db.acquire() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO api_keys (key_id, tenant, scopes, secret_hash, name, expires_at, "
                f"service_account) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                f"ON CONFLICT (key_id) DO NOTHING RETURNING {_COLUMNS}",
                key.key_id,
                key.tenant,
                sorted(s.value for s in key.scopes),
                key.secret_hash,
                key.name,
                key.expires_at,
                key.service_account,
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


async def page_keys(db: Database, tenant: str | None, after: str, limit: int) -> list[ApiKey]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE ($1::text IS NULL OR tenant = $1) "
        f"AND key_id > $2 ORDER BY key_id LIMIT $3",
        tenant,
        after,
        limit,
    )
    return [_key(row) for row in rows]


async def rotate_key(db: Database, key_id: str, secret_hash: bytes, overlap: timedelta) -> ApiKey:
    # One statement: a rotation racing a revocation or another rotation sees the row as
    # it is when it locks it. Not retried: a lost answer leaves no way to tell whether
    # the new secret (which only the caller knew) took.
    with translated():
        async with db.acquire() as conn:
            row = await conn.fetchrow(
                f"UPDATE api_keys SET previous_secret_hash = secret_hash, secret_hash = $2, "
                f"previous_until = now() + $3::interval "
                f"WHERE key_id = $1 AND revoked_at IS NULL "
                f"AND (expires_at IS NULL OR expires_at > now()) RETURNING {_COLUMNS}",
                key_id,
                secret_hash,
                overlap,
            )
    if row is not None:
        return _key(row)
    key = await get_key(db, key_id)
    if key is None:
        raise NotFound(f"api key `{echo(key_id)}` does not exist")
    state = "revoked" if key.revoked else "expired"
    raise FailedPrecondition(f"api key `{echo(key_id)}` is {state}: it cannot be rotated")


async def touch_keys(db: Database, used: Mapping[str, datetime]) -> None:
    if not used:
        return
    ids = list(used)
    await db.fetch(  # idempotent, so the retry of a lost connection is harmless
        "UPDATE api_keys AS k SET last_used_at = u.at "
        "FROM unnest($1::text[], $2::timestamptz[]) AS u(key_id, at) "
        "WHERE k.key_id = u.key_id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)",
        ids,
        [used[i] for i in ids],
    )


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

    async def page(self, tenant: str | None, after: str, limit: int) -> Sequence[ApiKey]:
        return await page_keys(self._db, tenant, after, limit)

    async def rotate(self, key_id: str, secret_hash: bytes, overlap: timedelta) -> ApiKey:
        return await rotate_key(self._db, key_id, secret_hash, overlap)

    async def touch(self, used: Mapping[str, datetime]) -> None:
        await touch_keys(self._db, used)
