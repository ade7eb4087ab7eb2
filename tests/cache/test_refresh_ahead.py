"""Refresh ahead (service/refresh.py, `RevisionResolver.upcoming`): near the end of a
quantization window the next window's revision is chosen, the plain Checks asked in the
window are computed at it in the background, and the next window pins that revision,
so a tenant taking writes is answered from the cache across windows. Answers are those
of an evaluation at the pinned revision, never of an older one."""

from __future__ import annotations

import asyncio
import gc

from authz_service.engine import CheckItem
from authz_service.model import (
    Consistency,
    ConsistencyMode,
    FrozenContext,
    ObjectRef,
    SubjectRef,
    UpdateOp,
)
from authz_service.revisions import RevisionResolver
from authz_service.service.bulk_items import check_item
from authz_service.service.permissions import PermissionService
from authz_service.service.refresh import AskedChecks
from authz_service.store.memory import MemoryStore
from tests.cache.test_revision_window import LATEST, Clock, T, Tracker, service, update
from tests.tenancy.helpers import CALL, item

FULL = Consistency(ConsistencyMode.FULLY_CONSISTENT)


def resolver_at(store: MemoryStore, clock: Clock, tracker: Tracker) -> RevisionResolver:
    return RevisionResolver(store, max_staleness_s=1.0, quantum_s=1.0, tracker=tracker, clock=clock)


async def test_upcoming_is_chosen_near_the_end_of_the_window_and_pinned_next() -> None:
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    resolver = resolver_at(store, clock, tracker)
    tracker.heads[T] = 4
    assert await resolver.resolve(T, LATEST) == 4  # pinned at 1000.0 until 1001.0
    tracker.heads[T] = 5
    assert resolver.upcoming(T, 0.2) is None  # too early
    clock.now += 0.85
    assert resolver.upcoming(T, 0.2) == 5
    assert resolver.upcoming(T, 0.2) is None  # once per window
    tracker.heads[T] = 6  # a newer head, heard before the window turns
    assert await resolver.resolve(T, LATEST) == 4  # the window still runs
    clock.now += 0.2
    assert await resolver.resolve(T, LATEST) == 5  # the revision chosen ahead
    clock.now += 1.0
    assert await resolver.resolve(T, LATEST) == 6


async def test_nothing_is_chosen_ahead_without_a_newer_head_or_past_the_staleness_bound() -> None:
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    resolver = resolver_at(store, clock, tracker)
    assert resolver.upcoming(T, 0.2) is None  # no window yet
    tracker.heads[T] = 4
    assert await resolver.resolve(T, LATEST) == 4
    clock.now += 0.9
    assert resolver.upcoming(T, 0.2) is None  # no write: the next window answers the same
    tracker.heads[T] = 5
    assert resolver.upcoming(T, 0.2) == 5
    clock.now += 5.0  # nobody asked for a while: revision 5 is no longer fresh enough
    tracker.heads[T] = 7
    assert await resolver.resolve(T, LATEST) == 7


async def refreshes_done(permissions: PermissionService) -> None:
    tasks = list(permissions._refreshing.values())
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    assert not permissions._refreshing


async def test_the_next_window_answers_from_the_cache_with_the_next_revisions_data() -> None:
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    permissions = await service(store, resolver_at(store, clock, tracker), 0.2)
    await store.write(T, [update("document:d#viewer@user:a"), update("document:d#viewer@user:b")])
    tracker.heads[T] = await store.head_revision(T)
    kept, revoked, granted = (
        item("document:d#view@user:a"),
        item("document:d#view@user:b"),
        item("document:d#view@user:c"),
    )
    first = [await permissions.check(T, c, LATEST, CALL) for c in (kept, revoked, granted)]
    assert [o.result.decision.value for o in first] == ["ALLOWED", "ALLOWED", "DENIED"]
    for again in (revoked, granted):  # asked again: answered from the cache, remembered
        assert (await permissions.check(T, again, LATEST, CALL)).cache_hit
    # Writes during the window: b loses access, c gains it.
    await store.write(T, [update("document:d#viewer@user:b", UpdateOp.DELETE)])
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:c")])
    clock.now += 0.9  # inside the last 0.2 s of the window
    assert (await permissions.check(T, kept, LATEST, CALL)).cache_hit  # triggers the refresh
    await refreshes_done(permissions)
    assert permissions.refreshed == 3
    clock.now += 0.2  # the next window
    second = [await permissions.check(T, c, LATEST, CALL) for c in (kept, revoked, granted)]
    assert [o.revision for o in second] == [tracker.heads[T]] * 3
    assert all(o.cache_hit for o in second)
    assert [o.result.decision.value for o in second] == ["ALLOWED", "DENIED", "ALLOWED"]
    # The same answers as a fully consistent evaluation of the same data.
    full = [await permissions.check(T, c, FULL, CALL) for c in (kept, revoked, granted)]
    assert [o.result.decision for o in full] == [o.result.decision for o in second]


async def test_without_refresh_ahead_the_next_window_misses() -> None:
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    permissions = await service(store, resolver_at(store, clock, tracker), 0.0)
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:a")])
    check = item("document:d#view@user:a")
    await permissions.check(T, check, LATEST, CALL)
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:b")])
    clock.now += 0.9
    await permissions.check(T, check, LATEST, CALL)
    assert not permissions._refreshing
    clock.now += 0.2
    assert not (await permissions.check(T, check, LATEST, CALL)).cache_hit


async def test_checks_that_are_not_plain_are_not_computed_ahead() -> None:
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    permissions = await service(store, resolver_at(store, clock, tracker), 0.2)
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:a")])
    await permissions.check(T, item("document:d#view@user:a"), FULL, CALL)
    await permissions.check(T, item("document:d#view@user:a"), LATEST, CALL, explain=True)
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:b")])
    clock.now += 0.9
    await permissions.check(T, item("document:d#view@user:a"), LATEST, CALL, explain=True)
    assert not permissions._refreshing
    assert permissions.refreshed == 0


def test_asked_checks_are_kept_per_window_and_bounded() -> None:
    asked = AskedChecks(per_tenant=2, tenants=2)
    one, two, three = (item(f"document:d#view@user:{u}") for u in "abc")
    for check in (one, two, three, one):
        asked.add("t1", 5, check)
    assert at(asked, "t1", 5) == [one, two]  # the first two asked
    assert asked.at("t1", 4) == []
    asked.add("t1", 6, three)  # a new window starts over
    assert at(asked, "t1", 6) == [three]
    asked.add("t2", 1, one)
    asked.add("t3", 1, one)  # a third tenant: the one whose window began first goes
    assert asked.at("t1", 6) == []
    assert at(asked, "t3", 1) == [one]


def at(asked: AskedChecks, tenant: str, revision: int) -> list[CheckItem]:
    return [check_item(it) for it in asked.at(tenant, revision)]


def test_asked_checks_are_kept_out_of_the_cycle_collector() -> None:
    # Up to 65k of them live a window long: as CheckItems (three dataclasses each) the
    # collector's full collections would walk every one.
    asked = AskedChecks()
    plain = [item(f"document:d{i}#view@user:u{i}") for i in range(50)]
    with_context = CheckItem(
        ObjectRef("document", "d"), "view", SubjectRef("user", "a"), FrozenContext({"n": 1})
    )
    asked.add_many("t1", 5, [*plain, with_context])
    gc.collect()
    gc.collect()
    kept = asked.at("t1", 5)
    assert [it for it in kept if gc.is_tracked(it)] == [with_context]
    assert [check_item(it) for it in kept] == [*plain, with_context]


async def test_check_bulk_items_are_computed_ahead_too() -> None:
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    permissions = await service(store, resolver_at(store, clock, tracker), 0.2)
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:a")])
    page = [("document", "d", "view", "user", u, "") for u in "abc"]  # the plain form
    await permissions.check_bulk(T, page, LATEST, CALL)
    await permissions.check_bulk(T, page, LATEST, CALL)  # answered from the cache
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:b")])
    clock.now += 0.9
    await permissions.check_bulk(T, page, LATEST, CALL)
    await refreshes_done(permissions)
    assert permissions.refreshed == 3
    clock.now += 0.2
    hits: list[bool] = []
    permissions._observe = lambda outcome, hit, count: hits.extend([hit] * count)
    revision, results, _ = await permissions.check_bulk(T, page, LATEST, CALL)
    assert revision == tracker.heads[T]
    assert hits == [True] * 3
    decisions = [r.decision.value for r in results]  # type: ignore[union-attr]
    assert decisions == ["ALLOWED", "ALLOWED", "DENIED"]


async def test_checks_asked_once_are_not_computed_ahead() -> None:
    """Uncached traffic (every Check asked once) would otherwise be computed twice."""
    store, clock = MemoryStore(), Clock()
    tracker = Tracker(clock)
    permissions = await service(store, resolver_at(store, clock, tracker), 0.2)
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:a")])
    for user in "abc":
        await permissions.check(T, item(f"document:d#view@user:{user}"), LATEST, CALL)
    tracker.heads[T] = await store.write(T, [update("document:d#viewer@user:b")])
    clock.now += 0.9
    await permissions.check(T, item("document:d#view@user:e"), LATEST, CALL)
    await permissions.check_bulk(T, [("document", "d", "view", "user", "f", "")], LATEST, CALL)
    assert not permissions._refreshing
    assert permissions.refreshed == 0
