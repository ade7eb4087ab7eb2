"""The subproblem cache: shared answers across requests, never across revisions, never
for an evaluation time before the entry was computed."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

from authz_service.cache.dispatcher import CachingDispatcher, Stored
from authz_service.cache.lru import DecisionCache
from authz_service.engine import CheckItem, Decision, Engine, Snapshot
from authz_service.model import (
    RelationshipUpdate,
    UpdateOp,
    parse_object,
    parse_relationship,
    parse_subject,
)
from authz_service.schema import compile_schema
from authz_service.store.memory import MemoryStore

SCHEMA = compile_schema(
    """
    use expiration
    definition user {}
    definition group { relation member: user with expiration | group#member }
    definition document { relation viewer: group#member
        permission view = viewer }
    """
)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


class CountingStore(MemoryStore):
    reads = 0

    async def read(self, *args: object, **kwargs: object) -> list:  # type: ignore[override]
        self.reads += 1
        return await super().read(*args, **kwargs)  # type: ignore[arg-type]


async def setup(lines: list[str]) -> tuple[CountingStore, Engine, int]:
    store = CountingStore()
    revision = await store.write(
        "acme", [RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(t)) for t in lines]
    )
    engine, _ = cached_engine(store)
    return store, engine, revision


def cached_engine(store: MemoryStore) -> tuple[Engine, DecisionCache[Stored]]:
    cache: DecisionCache[Stored] = DecisionCache(1000)
    engine = Engine(store, dispatcher_wrapper=lambda inner: CachingDispatcher(inner, cache))
    return engine, cache


def item(doc: str) -> CheckItem:
    return CheckItem(parse_object(f"document:{doc}"), "view", parse_subject("user:alice"))


async def test_a_shared_group_is_evaluated_once_across_requests() -> None:
    store, engine, revision = await setup(
        [
            "document:a#viewer@group:eng#member",
            "document:b#viewer@group:eng#member",
            "group:eng#member@group:core#member",
            "group:core#member@user:alice",
        ]
    )
    snap = Snapshot("acme", revision, SCHEMA, NOW)
    assert (await engine.check(snap, item("a"))).decision is Decision.ALLOWED
    first = store.reads
    assert (await engine.check(snap, item("b"))).decision is Decision.ALLOWED
    # Only document:b's own relation is read (direct subjects, then subject sets);
    # group:eng#member and everything below it come from the cache.
    assert store.reads - first == 2
    assert first == 5
    later = Snapshot("acme", revision + 1, SCHEMA, NOW)
    before = store.reads
    await engine.check(later, item("b"))
    assert store.reads - before > 1  # another revision never shares entries


async def test_an_entry_is_not_served_to_an_earlier_or_expired_time() -> None:
    store, engine, revision = await setup(
        [
            "document:a#viewer@group:eng#member",
            "group:eng#member@user:alice[expiration:2030-06-01T00:00:00Z]",
        ]
    )
    snap = Snapshot("acme", revision, SCHEMA, NOW)
    assert (await engine.check(snap, item("a"))).decision is Decision.ALLOWED
    after_expiry = Snapshot("acme", revision, SCHEMA, NOW + timedelta(days=200))
    assert (await engine.check(after_expiry, item("a"))).decision is Decision.DENIED
    reads = store.reads
    earlier = Snapshot("acme", revision, SCHEMA, NOW - timedelta(days=1))
    assert (await engine.check(earlier, item("a"))).decision is Decision.ALLOWED
    assert store.reads > reads  # evaluated again, not served from the later entry


async def test_request_only_relationships_never_meet_cached_answers() -> None:
    _store, engine, revision = await setup(["document:a#viewer@group:eng#member"])
    snap = Snapshot("acme", revision, SCHEMA, NOW)
    assert (await engine.check(snap, item("a"))).decision is Decision.DENIED
    claim = parse_relationship("group:eng#member@user:alice")
    with_claim = await engine.check(snap, item("a"), contextual=[claim])
    assert with_claim.decision is Decision.ALLOWED
    assert (await engine.check(snap, item("a"))).decision is Decision.DENIED


async def test_a_fully_consistent_snapshot_evaluates_afresh() -> None:
    store, engine, revision = await setup(
        ["document:a#viewer@group:eng#member", "group:eng#member@user:alice"]
    )
    snap = Snapshot("acme", revision, SCHEMA, NOW)
    await engine.check(snap, item("a"))
    cold = store.reads
    strict = Snapshot("acme", revision, SCHEMA, NOW, shared_cache=False)
    assert (await engine.check(strict, item("a"))).decision is Decision.ALLOWED
    assert store.reads - cold == cold  # every read again, nothing from the cache


async def test_entries_are_invisible_to_the_cycle_collector() -> None:
    """Keys and values of strings, ints, bools, None and datetimes only: after one
    collection none of them is tracked, so full collections do not walk the cache."""
    store = MemoryStore()
    revision = await store.write(
        "acme",
        [
            RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(t))
            for t in (
                "document:a#viewer@group:eng#member",
                "group:eng#member@group:core#member",
                f"group:core#member@user:alice[expiration:{(NOW + timedelta(days=1)).isoformat()}]",
            )
        ],
    )
    engine, cache = cached_engine(store)
    snap = Snapshot("acme", revision, SCHEMA, NOW)
    assert (await engine.check(snap, item("a"))).decision is Decision.ALLOWED
    assert (await engine.check(snap, item("b"))).decision is Decision.DENIED
    entries = list(cache._entries.items())
    assert len(entries) >= 4
    # fails on 5ebbc72: keys held ObjectRef and SubjectRef, values SubResult
    # A tuple is untracked in a collection once its items are: the entry's own tuple
    # goes a collection after the value tuple inside it (as in the server, over time).
    gc.collect()
    gc.collect()
    tracked = [(k, v) for k, v in entries if gc.is_tracked(k) or gc.is_tracked(v)]
    assert tracked == []
    # And they answer as what they stored: the expiring chain from the cache.
    before = cache.hits
    assert (await engine.check(snap, item("a"))).decision is Decision.ALLOWED
    assert cache.hits > before
