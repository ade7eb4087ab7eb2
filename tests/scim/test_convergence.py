"""A push whose record write fails after its effect was written: the IdP's retry
converges (in process, on the memory store, with the services the server composes)."""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.errors import Unavailable
from authz_service.model import ObjectRef, RelationshipFilter
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.provisioning import GROUP, USER, ProvisioningService
from authz_service.service.relationships import RelationshipService
from authz_service.store.scim import MemoryScimRecords, ScimRecord
from authz_service.tenancy import SubjectStatus
from tests.scim.conftest import SCHEMA
from tests.tenancy.helpers import World, world

CALL = CallInfo(credential_id="k", reason="scim: test")


class FailingOnce(MemoryScimRecords):
    """Fails the next `put` after the effect was applied, as a lost connection would."""

    fail_next = False

    async def put(self, tenant: str, record: ScimRecord, expected_version: int | None) -> None:
        if self.fail_next:
            self.fail_next = False
            raise Unavailable("database unavailable")
        await super().put(tenant, record, expected_version)


async def provisioning() -> tuple[World, FailingOnce, ProvisioningService]:
    w = await world(SCHEMA)
    await w.store.tenants.create("acme")
    records = FailingOnce()
    resolver = RevisionResolver(w.store, max_staleness_s=0)
    relationships = RelationshipService(
        store=w.store, schemas=w.schemas, resolver=resolver, audit=AuditTrail(None)
    )
    service = ProvisioningService(
        records=records,
        tenants=w.store.tenants,
        resolver=resolver,
        lifecycle=w.lifecycle,
        relationships=relationships,
    )
    return w, records, service


async def members(w: World, group_id: str) -> list[str]:
    head = await w.store.head_revision("acme")
    found = await w.store.read("acme", head, RelationshipFilter("group", (group_id,), "member"))
    return sorted(str(r.subject) for r in found)


async def test_a_failed_record_write_is_retried_to_the_same_state() -> None:
    w, records, service = await provisioning()
    alice = (await service.create("acme", USER, {"userName": "alice"}, CALL)).record
    bob = (await service.create("acme", USER, {"userName": "bob"}, CALL)).record
    eng = (await service.create("acme", GROUP, {"displayName": "eng"}, CALL)).record
    push: dict[str, Any] = {"displayName": "eng", "members": [{"value": alice.resource_id}]}

    records.fail_next = True
    with pytest.raises(Unavailable):
        await service.replace("acme", GROUP, eng.resource_id, push, None, CALL)
    # The effect is written, the record is not: the IdP saw an error and retries.
    assert (await service.get("acme", GROUP, eng.resource_id)).version == 1
    again = await service.replace("acme", GROUP, eng.resource_id, push, None, CALL)
    assert again.record.version == 2
    assert await members(w, eng.resource_id) == [f"user:{alice.resource_id}"]

    # The same for a removal and an addition in one push, and for a deactivation.
    swap: dict[str, Any] = {"displayName": "eng", "members": [{"value": bob.resource_id}]}
    records.fail_next = True
    with pytest.raises(Unavailable):
        await service.replace("acme", GROUP, eng.resource_id, swap, None, CALL)
    await service.replace("acme", GROUP, eng.resource_id, swap, None, CALL)
    assert await members(w, eng.resource_id) == [f"user:{bob.resource_id}"]

    off = {"userName": "bob", "active": False}
    records.fail_next = True
    with pytest.raises(Unavailable):
        await service.replace("acme", USER, bob.resource_id, off, None, CALL)
    await service.replace("acme", USER, bob.resource_id, off, None, CALL)
    head = await w.store.head_revision("acme")
    status = await w.statuses.record("acme", head, ObjectRef("user", bob.resource_id))
    assert status.status is SubjectStatus.SUSPENDED
    assert (await service.get("acme", USER, bob.resource_id)).document["active"] is False


async def test_a_refused_effect_writes_no_record() -> None:
    _, _, service = await provisioning()
    with pytest.raises(Exception, match="ghost"):
        await service.create(
            "acme", GROUP, {"displayName": "eng", "members": [{"value": "ghost"}]}, CALL
        )
    assert await service.list("acme", GROUP) == []
