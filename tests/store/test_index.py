"""The in-memory relationship index against the store it wraps: on generated worlds of
writes, deletes and filters, every read at every revision it answers equals the store's;
it never answers a revision it has not applied; it falls back to the store beyond its
row limit, and its deleted-row history is trimmed without changing answers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from authz_service.model import (
    WILDCARD,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    Revision,
    SubjectRef,
    UpdateOp,
    parse_relationship,
)
from authz_service.store import MemoryStore
from authz_service.store.index import IndexedStore
from authz_service.store.index_tenant import TenantIndex
from authz_service.store.postgres import PostgresStore
from authz_service.store.protocol import Change

T = "acme"
IDS = ["a", "b", "c"]
SUBJECT_IDS = ["u1", "u2", WILDCARD]


def _relationship(rtype: str, rid: str, rel: str, stype: str, sid: str, srel: str) -> Relationship:
    if srel and sid == WILDCARD:
        sid = "u1"  # a subject set is never a wildcard
    return Relationship(ObjectRef(rtype, rid), rel, SubjectRef(stype, sid, srel))


relationships = st.builds(
    _relationship,
    st.sampled_from(["doc", "group"]),
    st.sampled_from(IDS),
    st.sampled_from(["viewer", "member"]),
    st.sampled_from(["user", "group"]),
    st.sampled_from(SUBJECT_IDS),
    st.sampled_from(["", "member"]),
)
updates = st.builds(
    RelationshipUpdate, st.sampled_from([UpdateOp.TOUCH, UpdateOp.DELETE]), relationships
)
batches = st.lists(
    st.lists(updates, max_size=4, unique_by=lambda u: u.relationship.key), max_size=8
)
optional_ids = st.none() | st.lists(
    st.sampled_from(IDS + SUBJECT_IDS), min_size=1, max_size=3, unique=True
).map(tuple)
filters = st.builds(
    RelationshipFilter,
    st.sampled_from(["doc", "group"]) | st.none(),
    optional_ids,
    st.sampled_from(["viewer", "member"]) | st.none(),
    st.sampled_from(["user", "group"]) | st.none(),
    optional_ids,
    st.sampled_from(["", "member"]) | st.none(),
)


async def _play(store: MemoryStore, index: IndexedStore, before: list, after: list) -> Revision:
    for batch in before:
        await store.write(T, batch)
    assert await index.wait_loaded(T)
    for batch in after:
        await store.write(T, batch)
    return await store.head_revision(T)


@settings(max_examples=150, deadline=None)
@given(before=batches, after=batches, flts=st.lists(filters, min_size=1, max_size=6))
def test_every_answered_read_equals_the_store(before: list, after: list, flts: list) -> None:
    async def run() -> None:
        store = MemoryStore()
        index = IndexedStore(store, max_rows=10_000)
        head = await _play(store, index, before, after)
        for revision in range(head, -1, -1):  # newest first: the index catches up once
            for flt in flts:
                want = await store.read(T, revision, flt)
                assert await index.read(T, revision, flt) == want, (revision, flt)
                if want:
                    page = await index.read(T, revision, flt, limit=1, after=want[0])
                    assert page == want[1:2]
        assert index.applied(T) == head
        if any(_pins_ids(f) for f in flts):
            assert index.stats().memory_reads > 0

    asyncio.run(run())


async def test_a_revision_not_yet_applied_is_caught_up_before_it_is_answered() -> None:
    store = MemoryStore()
    index = IndexedStore(store, max_rows=100)
    await store.write(T, [_touch("doc:a#viewer@user:u1")])
    assert await index.wait_loaded(T)
    revision = await store.write(T, [_touch("doc:a#viewer@user:u2")])
    flt = RelationshipFilter("doc", ("a",), "viewer")
    found = await index.read(T, revision, flt)
    assert [str(r) for r in found] == ["doc:a#viewer@user:u1", "doc:a#viewer@user:u2"]
    assert index.applied(T) == revision


async def test_a_revision_beyond_the_head_is_never_marked_applied() -> None:
    store = MemoryStore()
    index = IndexedStore(store, max_rows=100)
    await store.write(T, [_touch("doc:a#viewer@user:u1")])
    assert await index.wait_loaded(T)
    flt = RelationshipFilter("doc", ("a",), "viewer")
    await index.read(T, 50, flt)  # answered by the store, as the store answers it
    assert index.applied(T) == 1
    revision = await store.write(T, [_touch("doc:a#viewer@user:u2")])
    assert len(await index.read(T, revision, flt)) == 2


async def test_a_tenant_over_the_row_limit_is_read_from_the_store() -> None:
    store = MemoryStore()
    index = IndexedStore(store, max_rows=3, load_inline=True)
    await store.write(T, [_touch(f"doc:a#viewer@user:u{i}") for i in range(4)])
    found = await index.read(T, 1, RelationshipFilter("doc", ("a",)))
    assert len(found) == 4
    assert index.applied(T) is None
    assert index.stats().memory_reads == 0
    assert index.stats().store_reads == 1
    assert await index.wait_loaded("other") is True  # small tenants still fit


async def test_changes_that_pass_the_row_limit_drop_the_tenant() -> None:
    store = MemoryStore()
    index = IndexedStore(store, max_rows=3, load_inline=True)
    await store.write(T, [_touch("doc:a#viewer@user:u0")])
    flt = RelationshipFilter("doc", ("a",))
    assert len(await index.read(T, 1, flt)) == 1
    revision = await store.write(T, [_touch(f"doc:a#viewer@user:u{i}") for i in range(1, 5)])
    assert len(await index.read(T, revision, flt)) == 5
    assert index.applied(T) is None


async def test_trimming_history_keeps_recent_revisions_exact() -> None:
    store = MemoryStore()
    index = IndexedStore(store, max_rows=100_000, load_inline=True)
    flt = RelationshipFilter("doc", ("a",), "viewer", "user", ("u1", WILDCARD))
    await store.write(T, [_touch("doc:a#viewer@user:u1")])
    assert len(await index.read(T, 1, flt)) == 1
    for _ in range(1_100):  # each pair of writes leaves one deleted row behind
        await store.write(T, [_remove("doc:a#viewer@user:u1")])
        await store.write(T, [_touch("doc:a#viewer@user:u1")])
    head = await store.head_revision(T)
    assert len(await index.read(T, head, flt)) == 1
    stats = index.stats()
    assert stats.rows < 1_100  # trimmed
    assert await index.read(T, head - 1, flt) == await store.read(T, head - 1, flt)
    assert await index.read(T, 2, flt) == []  # older than the floor: the store's answer


def _world(docs: int) -> tuple[TenantIndex, list[Change]]:
    """An index of `docs` documents with two viewers each, and changes deleting one
    viewer of each document, one revision per document."""
    index = TenantIndex(floor=1, applied=1)
    index.add(
        [parse_relationship(f"doc:d{i}#viewer@user:u{i % 7}") for i in range(docs)]
        + [parse_relationship(f"doc:d{i}#viewer@user:w{i}") for i in range(docs)],
        1,
    )
    deletes = [
        Change(2 + i, UpdateOp.DELETE, parse_relationship(f"doc:d{i}#viewer@user:w{i}"))
        for i in range(docs)
    ]
    return index, deletes


def _reads(index: TenantIndex, revision: Revision) -> list[list[Relationship] | None]:
    flts = [RelationshipFilter("doc", (f"d{i}",), "viewer") for i in range(0, 40, 3)] + [
        RelationshipFilter(subject_type="user", subject_ids=("u3", "w5", "w30"))
    ]
    return [index.scan(revision, flt, None, None) for flt in flts]


def test_trimming_in_steps_keeps_every_answered_read_exact() -> None:
    index, deletes = _world(40)
    reference, _ = _world(40)  # never trimmed
    index.apply(deletes[:30], 31)
    reference.apply(deletes[:30], 31)
    steps = index.trim_steps(step=4)
    next(steps)
    assert index.floor == 31  # raised first: older reads go to the store
    # A change applied between steps (by the tenant's catch-up) is newer than the floor:
    # it stays, and every read the index still answers is the untrimmed one.
    index.apply(deletes[30:], 41)
    reference.apply(deletes[30:], 41)
    turns = 1
    for _ in steps:
        turns += 1
        for revision in (31, 35, 41):
            assert _reads(index, revision) == _reads(reference, revision)
    # 160 rows looked at (80 per side), a yield once 4 were, after the object at hand
    # (at most 6 rows): at least one turn per 9 rows
    assert turns >= 160 // 9
    for revision in (31, 35, 41):
        assert _reads(index, revision) == _reads(reference, revision)
    assert (index.rows, index.dead) == (50, 10)  # the 10 deleted after the floor stay


async def test_a_large_trim_runs_in_steps_while_requests_run() -> None:
    store = MemoryStore()
    index = IndexedStore(store, max_rows=100_000, load_inline=True)
    docs = 20_000
    await store.write(T, [_touch(f"doc:d{i}#viewer@user:u{i}") for i in range(docs)])
    flt = RelationshipFilter("doc", ("d1",), "viewer")
    assert len(await index.read(T, 1, flt)) == 1
    head = await store.write(T, [_remove(f"doc:d{i}#viewer@user:u{i}") for i in range(5_000)])
    catching_up = asyncio.create_task(index.read(T, head, flt))
    seen = set()
    async with asyncio.timeout(30):
        # fails on 27d8a50: the deleted rows went in one walk inside the catch-up, the
        # event loop held throughout, so no turn in between ever saw a partial count
        while not catching_up.done() or index.stats().rows > docs - 5_000:
            seen.add(index.stats().rows)
            await asyncio.sleep(0)
    assert await catching_up == []
    assert len(seen - {docs, docs - 5_000}) > 0  # counts between: it went in steps
    assert await index.read(T, head, RelationshipFilter("doc", ("d4000",))) == await store.read(
        T, head, RelationshipFilter("doc", ("d4000",))
    )


async def test_the_index_follows_postgres_writes(pg_store: PostgresStore) -> None:
    index = IndexedStore(pg_store, max_rows=1_000, load_inline=True)
    flt = RelationshipFilter("group", ("g",), "member", "user", ("u1", WILDCARD), "")
    assert await index.read(T, 0, flt) == []
    first = await pg_store.write(T, [_touch("group:g#member@user:*")])
    second = await pg_store.write(T, [_touch("group:g#member@user:u1")])
    third = await pg_store.write(T, [_remove("group:g#member@user:*")])
    for revision in (third, second, first, 0):
        assert await index.read(T, revision, flt) == await pg_store.read(T, revision, flt)
    assert index.applied(T) == third
    assert index.stats().memory_reads >= 4


def _pins_ids(flt: RelationshipFilter) -> bool:
    return (flt.resource_type is not None and flt.resource_ids is not None) or (
        flt.subject_type is not None and flt.subject_ids is not None
    )


def _touch(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(text))


def _remove(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.DELETE, parse_relationship(text))


async def test_history_collected_while_the_index_was_behind_is_reloaded(
    pg_store: PostgresStore,
) -> None:
    """A delete whose row garbage collection removed never reaches the change feed: an
    index that had not applied it must not go on serving the deleted row."""
    indexed = IndexedStore(pg_store, max_rows=1_000, load_inline=True)
    aa = parse_relationship("doc:aa#viewer@user:ann")
    flt = RelationshipFilter("doc", ("aa",))
    r1 = await pg_store.write(T, [RelationshipUpdate(UpdateOp.TOUCH, aa)])
    assert await indexed.read(T, r1, flt) == [aa]
    r2 = await pg_store.write(T, [RelationshipUpdate(UpdateOp.DELETE, aa)])
    await pg_store.pool.execute(
        "UPDATE revisions SET committed_at = now() - interval '2 days' WHERE tenant = $1",
        T,
    )
    assert (await pg_store.collect_garbage(timedelta(days=1))).relationships == 1
    assert await indexed.read(T, r2, flt) == []
    assert indexed.stats().memory_reads == 1  # the stale index answered nothing
    await indexed.stop()
