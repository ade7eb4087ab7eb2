"""DeleteTenant purges one tenant and leaves every other exactly as it was: a property
over small generated data in two tenants (the service on the memory store, both stores
holding the same registry contract, tests/store/test_tenant_registry.py)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authz_service.errors import NotFound
from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    UpdateOp,
    parse_relationship,
)
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.schemas import SchemaManager
from authz_service.service.tenants import TenantService
from authz_service.store.memory import MemoryStore
from authz_service.store.protocol import Change

EVERYTHING = RelationshipFilter()

_RELS = st.builds(
    lambda doc, rel, user: parse_relationship(f"doc:{doc}#{rel}@user:{user}"),
    st.sampled_from(["d1", "d2", "d3"]),
    st.sampled_from(["viewer", "owner"]),
    st.sampled_from(["ann", "bob", "cy"]),
)
# A tenant's history: a few writes, each touching or deleting a few relationships.
_HISTORY = st.lists(
    st.lists(st.tuples(st.booleans(), _RELS), min_size=1, max_size=4, unique_by=lambda u: u[1]),
    max_size=5,
)


async def _play(
    store: MemoryStore, tenant: str, history: list[list[tuple[bool, Relationship]]]
) -> None:
    for write in history:
        ops = [RelationshipUpdate(UpdateOp.TOUCH if t else UpdateOp.DELETE, r) for t, r in write]
        await store.write(tenant, ops)


async def _snapshot(
    store: MemoryStore, tenant: str
) -> tuple[int, list[list[Relationship]], list[Change]]:
    head = await store.head_revision(tenant)
    reads = [await store.read(tenant, r, EVERYTHING) for r in range(head + 1)]
    return head, reads, await store.changes(tenant, 0, limit=10_000)


@settings(max_examples=60, deadline=None)
@given(doomed=_HISTORY, kept=_HISTORY)
def test_delete_purges_one_tenant_and_leaves_the_other_untouched(
    doomed: list[list[tuple[bool, Relationship]]], kept: list[list[tuple[bool, Relationship]]]
) -> None:
    async def run() -> None:
        store = MemoryStore()
        tenants = TenantService(
            registry=store.tenants,
            store=store,
            schemas=SchemaManager(store),
            resolver=RevisionResolver(store),
            audit=AuditTrail(None),
        )
        call = CallInfo()
        await tenants.create("doomed", "", call)
        await tenants.create("kept", "", call)
        await _play(store, "doomed", doomed)
        await _play(store, "kept", kept)
        live = await store.read("doomed", await store.head_revision("doomed"), EVERYTHING)
        before = await _snapshot(store, "kept")

        gone = await tenants.delete("doomed", "offboarded", call)

        assert gone.export.splitlines() == [str(r) for r in live]
        assert gone.relationships == len(live)
        assert await _snapshot(store, "kept") == before
        assert [t.name for t in await tenants.list(None, 10)] == ["kept"]
        for revision in range(gone.revision + 2):
            assert await store.read("doomed", revision, EVERYTHING) == []
        assert await store.changes("doomed", 0) == []
        with pytest.raises(NotFound, match="tenant `doomed` does not exist"):
            await tenants.require("doomed")

    asyncio.run(run())
