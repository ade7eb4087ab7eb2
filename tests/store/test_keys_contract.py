"""The KeyStore contract, on every backend (memory and PostgreSQL)."""

from __future__ import annotations

import secrets

import pytest

from authz_service.credentials import ALL_TENANTS, Scope, new_key
from authz_service.errors import AlreadyExists, NotFound
from authz_service.store import Store


def tenant() -> str:
    # The PostgreSQL fixture shares one database per session; unique tenants keep tests apart.
    return f"t{secrets.token_hex(4)}"


async def test_created_keys_read_back_exactly(store: Store) -> None:
    record, _ = new_key(tenant=tenant(), scopes=[Scope.CHECK, Scope.AUDIT], name="ci runner")
    stored = await store.keys.create(record)
    assert await store.keys.get(record.key_id) == stored
    assert (stored.key_id, stored.tenant, stored.scopes, stored.name) == (
        record.key_id,
        record.tenant,
        record.scopes,
        record.name,
    )
    assert stored.secret_hash == record.secret_hash
    assert stored.created_at.tzinfo is not None
    assert stored.revoked_at is None


async def test_a_taken_id_is_refused(store: Store) -> None:
    record, _ = new_key(tenant=tenant(), scopes=[Scope.CHECK])
    await store.keys.create(record)
    with pytest.raises(AlreadyExists):
        await store.keys.create(record)


async def test_unknown_keys(store: Store) -> None:
    assert await store.keys.get("nosuchkeyidx") is None
    with pytest.raises(NotFound):
        await store.keys.revoke("nosuchkeyidx")


async def test_list_filters_by_tenant_in_creation_order(store: Store) -> None:
    a, b = tenant(), tenant()
    first = await store.keys.create(new_key(tenant=a, scopes=[Scope.CHECK])[0])
    other = await store.keys.create(new_key(tenant=b, scopes=[Scope.CHECK])[0])
    second = await store.keys.create(new_key(tenant=a, scopes=[Scope.WRITE])[0])
    platform = await store.keys.create(new_key(tenant=ALL_TENANTS, scopes=[Scope.ADMIN])[0])
    listed = [k.key_id for k in await store.keys.list(a)]
    assert sorted(listed) == sorted([first.key_id, second.key_id])
    keys = await store.keys.list(a)
    assert [(k.created_at, k.key_id) for k in keys] == sorted(
        (k.created_at, k.key_id) for k in keys
    )
    assert platform.key_id in [k.key_id for k in await store.keys.list(ALL_TENANTS)]
    everything = {k.key_id for k in await store.keys.list()}
    assert {first.key_id, second.key_id, other.key_id, platform.key_id} <= everything


async def test_revocation_is_kept_and_idempotent(store: Store) -> None:
    record, _ = new_key(tenant=tenant(), scopes=[Scope.CHECK])
    await store.keys.create(record)
    revoked = await store.keys.revoke(record.key_id)
    assert revoked.revoked_at is not None
    again = await store.keys.revoke(record.key_id)
    assert again.revoked_at == revoked.revoked_at
    stored = await store.keys.get(record.key_id)
    assert stored is not None
    assert stored.revoked_at == revoked.revoked_at
    assert record.key_id in [k.key_id for k in await store.keys.list(record.tenant)]
