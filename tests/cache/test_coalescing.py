"""Identical Checks that miss at the same time are computed once; the others wait for
that answer, and compute for themselves if the first one fails."""

from __future__ import annotations

import asyncio

from authz_service.cache.lru import DecisionCache
from authz_service.cache.results import StoredResult
from authz_service.engine import Engine
from authz_service.model import (
    Consistency,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    Revision,
    UpdateOp,
    parse_relationship,
)
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail
from authz_service.service.permissions import PermissionService
from authz_service.service.schemas import SchemaManager
from authz_service.store.memory import MemoryStore
from tests.tenancy.helpers import CALL, NOW, item

T = "acme"
CALLERS = 10
SCHEMA = """
definition user {}
definition group { relation member: user | group#member }
definition document { relation viewer: user | group#member  permission view = viewer }
"""


class GatedStore(MemoryStore):
    """Reads wait for `gate`; counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.reads = 0
        self.fail = False

    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> list[Relationship]:
        self.reads += 1
        await self.gate.wait()
        if self.fail:
            self.fail = False
            raise RuntimeError("the first computation fails")
        return await super().read(tenant, revision, flt, limit=limit, after=after)


class CountingResolver(RevisionResolver):
    """Sets `all_resolved` once every caller has its revision: each then goes on to the
    cache and to the coalescing without yielding."""

    resolved = 0
    all_resolved: asyncio.Event

    async def resolve(self, tenant: str, consistency: Consistency) -> Revision:
        revision = await super().resolve(tenant, consistency)
        self.resolved += 1
        if self.resolved == CALLERS:
            self.all_resolved.set()
        return revision


async def setup() -> tuple[GatedStore, CountingResolver, PermissionService]:
    store = GatedStore()
    schemas = SchemaManager(store)
    await schemas.write(SCHEMA)
    for text in ("document:d#viewer@group:g#member", "group:g#member@user:a"):
        await store.write(T, [RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(text))])
    resolver = CountingResolver(store, max_staleness_s=3600)
    resolver.all_resolved = asyncio.Event()
    cache: DecisionCache[StoredResult] = DecisionCache(100)
    permissions = PermissionService(
        engine=Engine(store),
        schemas=schemas,
        resolver=resolver,
        cache=cache,
        audit=AuditTrail(None),
        clock=lambda: NOW,
    )
    return store, resolver, permissions


async def concurrent_checks(
    resolver: CountingResolver, permissions: PermissionService, store: GatedStore
) -> list[object]:
    check = item("document:d#view@user:a")
    calls = [
        asyncio.create_task(permissions.check(T, check, Consistency(), CALL))
        for _ in range(CALLERS)
    ]
    async with asyncio.timeout(10):
        await resolver.all_resolved.wait()
    store.gate.set()
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_identical_concurrent_misses_are_computed_once() -> None:
    # fails on 838c60d: each of the 10 callers evaluated the check itself
    store, resolver, permissions = await setup()
    outcomes = await concurrent_checks(resolver, permissions, store)
    decisions = {o.result.decision.value for o in outcomes}  # type: ignore[attr-defined]
    assert decisions == {"ALLOWED"}
    single = store.reads
    store.reads, store.gate = 0, asyncio.Event()
    store.gate.set()
    permissions._cache.clear()
    await permissions.check(T, item("document:d#view@user:a"), Consistency(), CALL)
    assert single == store.reads  # ten callers, the reads of one evaluation
    assert permissions.coalesced == CALLERS - 1


async def test_when_the_first_computation_fails_the_others_compute_themselves() -> None:
    store, resolver, permissions = await setup()
    store.fail = True
    outcomes = await concurrent_checks(resolver, permissions, store)
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    assert {o.result.decision.value for o in answered} == {"ALLOWED"}  # type: ignore[attr-defined]
    assert permissions.coalesced < CALLERS - 1
