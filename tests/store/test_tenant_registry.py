"""The tenant registry (store/registry.py) on every backend, as part of the contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from authz_service.errors import AlreadyExists, FailedPrecondition, NotFound
from authz_service.model import RelationshipFilter
from authz_service.store import Store
from authz_service.store.registry import TenantState
from authz_service.store.scim import ScimSync
from authz_service.tenancy.suspension import suspension_update
from tests.store.test_contract import create, live, rel

EVERYTHING = RelationshipFilter()


async def test_create_registers_an_active_tenant_once(store: Store) -> None:
    record = await store.tenants.create("acme")
    assert (record.name, record.state, record.head) == ("acme", TenantState.ACTIVE, 0)
    assert await store.tenants.get("acme") == record
    assert await store.tenants.get("other") is None
    with pytest.raises(AlreadyExists, match="tenant `acme` already exists"):
        await store.tenants.create("acme")


async def test_list_pages_by_name(store: Store) -> None:
    for name in ("b", "a", "c"):
        await store.tenants.create(name)
    assert [t.name for t in await store.tenants.list(None, 2)] == ["a", "b"]
    assert [t.name for t in await store.tenants.list("b", 10)] == ["c"]


async def test_a_suspended_tenant_refuses_every_write_until_reactivated(store: Store) -> None:
    await store.tenants.create("acme")
    await store.write("acme", [create("doc:1#viewer@user:a")])
    marker = suspension_update(True, "unpaid", datetime.now(UTC))
    suspended_at = await store.tenants.set_state("acme", TenantState.SUSPENDED, [marker])
    assert suspended_at == 2
    record = await store.tenants.get("acme")
    assert record is not None
    assert record.state is TenantState.SUSPENDED
    with pytest.raises(FailedPrecondition, match="tenant `acme` is suspended"):
        await store.write("acme", [create("doc:2#viewer@user:a")])
    with pytest.raises(FailedPrecondition, match="suspended"):
        await store.delete("acme", EVERYTHING)
    with pytest.raises(FailedPrecondition, match="suspended"):
        await store.apply("acme", [], [EVERYTHING])
    assert await store.head_revision("acme") == 2
    assert await store.read("acme", 2, EVERYTHING) == [
        marker.relationship,
        rel("doc:1#viewer@user:a"),
    ]
    removal = suspension_update(False, "paid", datetime.now(UTC))
    assert await store.tenants.set_state("acme", TenantState.ACTIVE, [removal]) == 3
    assert await live(store, "acme") == ["doc:1#viewer@user:a"]
    assert await store.write("acme", [create("doc:2#viewer@user:a")]) == 4


async def test_purge_removes_one_tenant_and_keeps_its_head(store: Store) -> None:
    for name in ("acme", "other"):
        await store.tenants.create(name)
        await store.write(name, [create("doc:1#viewer@user:a")])
        await store.scim.note_push(name, datetime.now(UTC), None)
    await store.tenants.purge("acme")
    assert await store.tenants.get("acme") is None
    assert await store.scim.sync("acme") == ScimSync()  # its SCIM sync status goes too
    assert (await store.scim.sync("other")).last_push is not None
    assert [t.name for t in await store.tenants.list(None, 10)] == ["other"]
    assert await store.read("acme", 1, EVERYTHING) == []
    assert await live(store, "other") == ["doc:1#viewer@user:a"]
    with pytest.raises(NotFound, match="tenant `acme` does not exist"):
        await store.write("acme", [create("doc:2#viewer@user:a")])
    with pytest.raises(NotFound):
        await store.tenants.purge("acme")
    with pytest.raises(NotFound):
        await store.tenants.set_state("acme", TenantState.ACTIVE, [])
    # Created again, it starts empty and its revisions go on growing (a decision cached
    # under an old (tenant, revision) key can never match the new tenant).
    again = await store.tenants.create("acme")
    assert again.state is TenantState.ACTIVE
    assert again.head > 1
    revision = await store.write("acme", [create("doc:3#viewer@user:a")])
    assert revision > again.head
    assert await live(store, "acme") == ["doc:3#viewer@user:a"]
