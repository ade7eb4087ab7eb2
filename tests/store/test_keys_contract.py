"""The KeyStore contract, on every backend (memory and PostgreSQL)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from authz_service.credentials import ALL_TENANTS, Scope, new_key, new_secret
from authz_service.errors import AlreadyExists, FailedPrecondition, NotFound
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


async def test_expiry_reads_back(store: Store) -> None:
    expires = datetime.now(UTC) + timedelta(days=3)
    record, _ = new_key(tenant=tenant(), scopes=[Scope.CHECK], expires_at=expires)
    stored = await store.keys.create(record)
    assert stored.expires_at == expires
    assert (await store.keys.get(record.key_id)) == stored
    assert not stored.expired(datetime.now(UTC))
    assert stored.expired(expires)


@pytest.mark.parametrize("expires", [datetime.max.replace(tzinfo=UTC)], ids=["year-9999"])
async def test_an_expiry_at_the_end_of_the_timestamp_range_reads_back_aware(
    store: Store, expires: datetime
) -> None:
    record, _ = new_key(tenant=tenant(), scopes=[Scope.CHECK], expires_at=expires)
    await store.keys.create(record)
    stored = await store.keys.get(record.key_id)
    assert stored is not None
    assert stored.expires_at == expires
    assert not stored.expired(datetime.now(UTC))


async def test_rotation_keeps_the_identity_and_the_old_secret_for_the_overlap(
    store: Store,
) -> None:
    record, _ = new_key(tenant=tenant(), scopes=[Scope.CHECK, Scope.WRITE], name="svc")
    await store.keys.create(record)
    secret, digest = new_secret()
    before = datetime.now(UTC)
    rotated = await store.keys.rotate(record.key_id, digest, timedelta(hours=1))
    assert (rotated.key_id, rotated.tenant, rotated.scopes, rotated.name) == (
        record.key_id,
        record.tenant,
        record.scopes,
        "svc",
    )
    assert rotated.secret_hash == digest
    assert rotated.previous_hash == record.secret_hash
    assert rotated.previous_until is not None
    assert before + timedelta(minutes=59) < rotated.previous_until
    assert rotated.previous_until < before + timedelta(minutes=61)
    assert await store.keys.get(record.key_id) == rotated
    assert rotated.matches(secret)


async def test_revoked_expired_and_unknown_keys_are_not_rotated(store: Store) -> None:
    revoked, _ = new_key(tenant=tenant(), scopes=[Scope.CHECK])
    await store.keys.create(revoked)
    await store.keys.revoke(revoked.key_id)
    past = datetime.now(UTC) - timedelta(hours=1)
    expired, _ = new_key(
        tenant=tenant(), scopes=[Scope.CHECK], now=past, expires_at=past + timedelta(minutes=1)
    )
    await store.keys.create(expired)
    _, digest = new_secret()
    with pytest.raises(FailedPrecondition, match="revoked"):
        await store.keys.rotate(revoked.key_id, digest, timedelta(0))
    with pytest.raises(FailedPrecondition, match="expired"):
        await store.keys.rotate(expired.key_id, digest, timedelta(0))
    with pytest.raises(NotFound):
        await store.keys.rotate("a" * 12, digest, timedelta(0))
    assert (await store.keys.get(revoked.key_id)) is not None
    assert (await store.keys.get(revoked.key_id)).secret_hash == revoked.secret_hash  # type: ignore[union-attr]


async def test_pages_are_ordered_by_id_and_filtered_by_tenant(store: Store) -> None:
    mine, other = tenant(), tenant()
    ids = []
    for _ in range(5):
        record, _ = new_key(tenant=mine, scopes=[Scope.CHECK])
        ids.append((await store.keys.create(record)).key_id)
    await store.keys.create(new_key(tenant=other, scopes=[Scope.CHECK])[0])
    first = await store.keys.page(mine, "", 3)
    rest = await store.keys.page(mine, first[-1].key_id, 3)
    assert [k.key_id for k in [*first, *rest]] == sorted(ids)
    assert len(first) == 3
    everyone = await store.keys.page(None, "", 1000)
    assert {k.tenant for k in everyone} >= {mine, other}
    assert [k.key_id for k in everyone] == sorted(k.key_id for k in everyone)


async def test_touch_records_last_use_and_never_moves_it_back(store: Store) -> None:
    record, _ = new_key(tenant=tenant(), scopes=[Scope.CHECK])
    await store.keys.create(record)
    later = datetime.now(UTC)
    earlier = later - timedelta(minutes=5)
    await store.keys.touch({record.key_id: later, "zzzzzzzzzzzz": later})
    await store.keys.touch({record.key_id: earlier})
    assert (await store.keys.get(record.key_id)).last_used_at == later  # type: ignore[union-attr]
    await store.keys.touch({})
