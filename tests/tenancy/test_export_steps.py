"""ExportTenant and DeleteTenant build a tenant's export in steps that let other requests
run: the export of a suspended tenant of 200,000 relationships held the event loop for
2-3.8 s (another tenant's Check ran past its deadline), and DeleteTenant read all of them
before refusing to return an export over the inline limit (3.2 s, the same stall)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from authz_service.errors import FailedPrecondition
from authz_service.model import RelationshipFilter, RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.schemas import SchemaManager
from authz_service.service.tenants import TenantService
from authz_service.store.memory import MemoryStore
from authz_service.store.registry import TenantState


class CountingStore(MemoryStore):
    """Counts the relationships its reads returned."""

    rows = 0

    async def read(self, tenant: str, revision: int, flt: RelationshipFilter, **kw: Any) -> Any:
        found = await super().read(tenant, revision, flt, **kw)
        self.rows += len(found)
        return found


async def _tenant(rels: list[str]) -> tuple[CountingStore, TenantService]:
    store = CountingStore()
    tenants = TenantService(
        registry=store.tenants,
        store=store,
        schemas=SchemaManager(store),
        resolver=RevisionResolver(store),
        audit=AuditTrail(None),
    )
    await tenants.create("big", "", CallInfo())
    updates = [RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(r)) for r in rels]
    await store.write("big", updates)
    return store, tenants


async def test_an_export_lets_other_tasks_run_and_keeps_its_order_and_digest() -> None:
    # Types whose text order differs from the store's order by columns: `doc/sub:`
    # sorts before `doc:` as text, after `doc` as a type.
    rels = [f"doc:d{i}#viewer@user:u{i}" for i in range(3_000)]
    rels += [f"doc/sub:e{i}#viewer@user:u{i}" for i in range(10)]
    _, tenants = await _tenant(rels)
    await tenants.suspend("big", "offboarding", CallInfo())
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    running = asyncio.ensure_future(ticker())
    try:
        start = turns
        exported = await tenants.export("big", CallInfo())
        during = turns - start
    finally:
        running.cancel()
    assert during > 0  # fails before: 0, read, sorted and hashed in one piece
    lines = sorted(str(parse_relationship(r)) for r in rels)
    assert exported.lines == lines
    text = "".join(f"{line}\n" for line in lines)
    assert exported.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert exported.size == len(text.encode())


async def test_delete_refuses_an_export_over_the_inline_limit_before_reading_it_all() -> None:
    # 6,000 relationships of about 1 KiB: twice the inline limit.
    rels = [f"doc:{'d' * 1000}{i}#viewer@user:u{i}" for i in range(6_000)]
    store, tenants = await _tenant(rels)
    with pytest.raises(FailedPrecondition, match="stream the export with ExportTenant"):
        await tenants.delete("big", "offboarding", CallInfo())
    assert store.rows < len(rels)  # fails before: every relationship was read first
    assert (await tenants.status("big")).state is TenantState.SUSPENDED  # nothing purged
    head = await store.head_revision("big")
    assert len(await store.read("big", head, RelationshipFilter(resource_type="doc"))) == 6_000
