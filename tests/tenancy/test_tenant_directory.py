"""`TenantService.require`: found tenants are kept for the staleness window, tenants not
found are asked of the registry every time (so one created elsewhere is usable at once),
and `fresh` always asks."""

from __future__ import annotations

import pytest

from authz_service.errors import NotFound
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail
from authz_service.service.schemas import SchemaManager
from authz_service.service.tenants import TenantService
from authz_service.store.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def directory(store: MemoryStore, clock: Clock) -> TenantService:
    return TenantService(
        registry=store.tenants,
        store=store,
        schemas=SchemaManager(store),
        resolver=RevisionResolver(store),
        audit=AuditTrail(None),
        fresh_s=1.0,
        clock=clock,
    )


async def test_unknown_is_never_remembered_and_found_is_kept_for_the_window() -> None:
    store, clock = MemoryStore(), Clock()
    here = directory(store, clock)
    with pytest.raises(NotFound, match="tenant `acme` does not exist"):
        await here.require("acme")
    await store.tenants.create("acme")  # through another replica: this one was not told
    await here.require("acme")  # found at once
    await store.tenants.purge("acme")  # deleted elsewhere
    clock.now = 0.5
    await here.require("acme")  # still inside the window
    with pytest.raises(NotFound):
        await here.require("acme", fresh=True)  # fully_consistent asks the registry
    await store.tenants.create("acme")
    await here.require("acme")
    await store.tenants.purge("acme")
    clock.now = 2.0  # past the window: asked again
    with pytest.raises(NotFound):
        await here.require("acme")
