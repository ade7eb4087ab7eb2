"""Caches that survive writes: minimize_latency reads share one revision per window
(quantization), bounded by the staleness window; tokens and fully consistent reads are
never answered at an older revision than they ask for."""

from __future__ import annotations

from authz_service.cache.lru import DecisionCache
from authz_service.cache.results import StoredResult
from authz_service.engine import Engine
from authz_service.model import (
    Consistency,
    ConsistencyMode,
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
LATEST = Consistency()
FULL = Consistency(ConsistencyMode.FULLY_CONSISTENT)
SCHEMA = """
definition user {}
definition group { relation member: user }
definition document { relation viewer: user | group#member  permission view = viewer }
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tracker:
    """Heads as a notification listener hears them, at the fake clock's time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.heads: dict[str, Revision] = {}

    def known_head(self, tenant: str) -> tuple[Revision, float] | None:
        return (self.heads.get(tenant, 0), self.clock())


def update(text: str, op: UpdateOp = UpdateOp.TOUCH) -> RelationshipUpdate:
    return RelationshipUpdate(op, parse_relationship(text))


def fresh(revision: Revision) -> Consistency:
    return Consistency(ConsistencyMode.AT_LEAST_AS_FRESH, revision)


async def test_minimize_latency_keeps_one_revision_for_the_window() -> None:
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    resolver = RevisionResolver(
        store, max_staleness_s=1.0, quantum_s=0.5, tracker=tracker, clock=clock
    )
    tracker.heads[T] = 4
    assert await resolver.resolve(T, LATEST) == 4
    tracker.heads[T] = 5  # a write, heard at once
    clock.now += 0.4
    assert await resolver.resolve(T, LATEST) == 4  # same window, same revision
    assert await resolver.resolve(T, fresh(5)) == 5  # a token is never answered older
    assert await resolver.resolve(T, fresh(3)) == 4  # ... but may share the window's
    clock.now += 0.1
    assert await resolver.resolve(T, LATEST) == 5  # next window


async def test_the_window_never_outlives_the_staleness_bound() -> None:
    store, clock = MemoryStore(), Clock()
    resolver = RevisionResolver(store, max_staleness_s=1.0, quantum_s=1.0, clock=clock)
    await store.write(T, [update("document:d#viewer@user:a")])
    resolver.observe(T, 1)
    clock.now += 0.9  # known 0.9 s ago, pinned now
    assert await resolver.resolve(T, LATEST) == 1
    await store.write(T, [update("document:d#viewer@user:b")])
    clock.now += 0.2  # the pin is 0.2 s old, but revision 1 was known 1.1 s ago
    assert await resolver.resolve(T, LATEST) == 2  # from the database


async def service(
    store: MemoryStore, resolver: RevisionResolver, refresh_ahead_s: float = 0.0
) -> PermissionService:
    schemas = SchemaManager(store)
    await schemas.write(SCHEMA)
    cache: DecisionCache[StoredResult] = DecisionCache(100)
    return PermissionService(
        engine=Engine(store),
        schemas=schemas,
        resolver=resolver,
        cache=cache,
        audit=AuditTrail(None),
        clock=lambda: NOW,
        refresh_ahead_s=refresh_ahead_s,
    )


async def test_cached_answers_survive_writes_inside_the_window() -> None:
    # fails on 838c60d: the revision is in every key and followed every write, so each
    # write emptied the tenant's cache
    store = MemoryStore()
    permissions = await service(store, RevisionResolver(store, max_staleness_s=3600))
    check = item("document:d#view@user:a")
    await store.write(T, [update("document:d#viewer@user:a")])
    first = await permissions.check(T, check, LATEST, CALL)
    hits = []
    for i in range(5):
        revision = await store.write(T, [update(f"group:g#member@user:u{i}")])
        permissions._resolver.observe(T, revision)  # as the write path does
        hits.append((await permissions.check(T, check, LATEST, CALL)).cache_hit)
    assert first.result.decision.value == "ALLOWED"
    assert hits == [True] * 5


async def test_fresh_and_fully_consistent_checks_see_a_write_inside_the_window() -> None:
    store = MemoryStore()
    permissions = await service(store, RevisionResolver(store, max_staleness_s=3600))
    check = item("document:d#view@user:a")
    await store.write(T, [update("document:d#viewer@user:a")])
    assert (await permissions.check(T, check, LATEST, CALL)).result.decision.value == "ALLOWED"
    revoked = await store.write(T, [update("document:d#viewer@user:a", UpdateOp.DELETE)])
    stale = await permissions.check(T, check, LATEST, CALL)
    assert stale.cache_hit  # minimize_latency: the window's revision, inside the bound
    assert (
        await permissions.check(T, check, fresh(revoked), CALL)
    ).result.decision.value == "DENIED"
    assert (await permissions.check(T, check, FULL, CALL)).result.decision.value == "DENIED"


async def test_check_bulk_items_share_the_check_cache() -> None:
    # fails on 838c60d: CheckBulk evaluated every item, cached or not
    store = MemoryStore()
    seen: list[bool] = []
    permissions = await service(store, RevisionResolver(store, max_staleness_s=3600))
    permissions._observe = lambda outcome, hit, count: seen.extend([hit] * count)
    await store.write(T, [update("document:d#viewer@user:a")])
    first = await permissions.check(T, item("document:d#view@user:a"), LATEST, CALL)
    seen.clear()
    items = [item("document:d#view@user:a"), item("document:d#view@user:b")]
    _, results, _ = await permissions.check_bulk(T, items, LATEST, CALL)
    assert sorted(seen) == [False, True]  # counted per (outcome, hit), once per item
    decisions = [r.decision.value for r in results]  # type: ignore[union-attr]
    assert decisions == [first.result.decision.value, "DENIED"]
    seen.clear()
    await permissions.check(T, items[1], LATEST, CALL)  # the bulk's answer is cached too
    assert seen == [True]
