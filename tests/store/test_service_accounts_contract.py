"""The ServiceAccounts contract, and the keys it owns, on every backend (memory and
PostgreSQL)."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from authz_service.credentials import Scope, new_key
from authz_service.errors import AlreadyExists, NotFound
from authz_service.store import Store


def tenant() -> str:
    # The PostgreSQL fixture shares one database per session; unique tenants keep tests apart.
    return f"t{secrets.token_hex(4)}"


async def test_accounts_read_back_and_page_by_id(store: Store) -> None:
    t, other = tenant(), tenant()
    made = [
        await store.service_accounts.create(t, name, f"the {name}") for name in ("ci", "bot", "etl")
    ]
    await store.service_accounts.create(other, "ci", "another tenant's")
    assert await store.service_accounts.get(t, "bot") == made[1]
    assert made[0].created_at.tzinfo is not None
    assert made[0].disabled_at is None
    first = await store.service_accounts.page(t, "", 2)
    rest = await store.service_accounts.page(t, first[-1].account_id, 2)
    assert [a.account_id for a in [*first, *rest]] == ["bot", "ci", "etl"]
    assert {a.tenant for a in [*first, *rest]} == {t}


async def test_a_taken_id_is_refused_and_unknown_ones_not_found(store: Store) -> None:
    t = tenant()
    await store.service_accounts.create(t, "ci", "")
    with pytest.raises(AlreadyExists):
        await store.service_accounts.create(t, "ci", "again")
    assert await store.service_accounts.get(t, "nope") is None
    with pytest.raises(NotFound):
        await store.service_accounts.set_disabled(t, "nope", True)
    with pytest.raises(NotFound):
        await store.service_accounts.delete(t, "nope")


async def test_disable_keeps_its_first_time_and_enable_clears_it(store: Store) -> None:
    t = tenant()
    await store.service_accounts.create(t, "ci", "")
    first = await store.service_accounts.set_disabled(t, "ci", True)
    again = await store.service_accounts.set_disabled(t, "ci", True)
    assert first.disabled_at is not None
    assert again.disabled_at == first.disabled_at
    enabled = await store.service_accounts.set_disabled(t, "ci", False)
    assert enabled.disabled_at is None
    await store.service_accounts.delete(t, "ci")
    assert await store.service_accounts.get(t, "ci") is None


async def test_keys_carry_their_owner_and_its_disablement(store: Store) -> None:
    t = tenant()
    await store.service_accounts.create(t, "ci", "")
    record, _ = new_key(tenant=t, scopes=[Scope.CHECK])
    owned = await store.keys.create(replace(record, service_account="ci"))
    plain = await store.keys.create(new_key(tenant=t, scopes=[Scope.CHECK])[0])
    assert owned.service_account == "ci"
    assert owned.owner_disabled_at is None
    assert plain.service_account is None
    disabled = await store.service_accounts.set_disabled(t, "ci", True)
    read = await store.keys.get(owned.key_id)
    assert read is not None
    assert read.owner_disabled_at == disabled.disabled_at
    assert [k.owner_disabled_at for k in await store.keys.list(t)] == [
        disabled.disabled_at,
        None,
    ]
    await store.service_accounts.set_disabled(t, "ci", False)
    again = await store.keys.get(owned.key_id)
    assert again is not None
    assert again.owner_disabled_at is None


async def test_offboarding_a_tenant_removes_its_accounts_only(store: Store) -> None:
    gone, kept = tenant(), tenant()
    for name in (gone, kept):
        await store.tenants.create(name)
        await store.service_accounts.create(name, "ci", "")
    await store.tenants.purge(gone)
    assert await store.service_accounts.get(gone, "ci") is None
    assert await store.service_accounts.get(kept, "ci") is not None
