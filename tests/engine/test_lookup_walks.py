"""LookupResources' kept walks: a client paging through a large lookup (limit and
cursor, at the first page's revision) does not walk the candidates again on every page,
and a kept walk never answers where the walk itself would answer otherwise: past the
expiry of a relationship it read, with request-only relationships, or for a fully
consistent call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from authz_service.cache.lru import DecisionCache
from authz_service.engine import Candidates, Engine, Snapshot
from authz_service.model import (
    EMPTY_CONTEXT,
    Relationship,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
    parse_relationship,
)
from authz_service.schema import compile_schema
from tests.cache.test_dispatcher import CountingStore

from .helpers import NOW, TENANT

SCHEMA = """
use expiration
definition user {}
definition folder {
    relation viewer: user | user with expiration
    permission view = viewer
}
definition doc {
    relation folder: folder
    relation viewer: user
    permission view = viewer + folder->view
}
"""
DOCS = 1_500  # over the size from which walks are kept
ANN = SubjectRef("user", "ann")


async def world() -> tuple[CountingStore, Snapshot]:
    store = CountingStore()
    rels = [f"doc:d{i:05}#viewer@user:ann" for i in range(DOCS)]
    rels += [
        "doc:x0001#folder@folder:soon",
        "folder:soon#viewer@user:ann[expiration:2030-01-01T00:10:00Z]",  # NOW + 10 min
    ]
    updates = [RelationshipUpdate(UpdateOp.CREATE, parse_relationship(r)) for r in rels]
    revision = await store.write(TENANT, updates)
    return store, Snapshot(TENANT, revision, compile_schema(SCHEMA), NOW)


async def ids(
    engine: Engine,
    snap: Snapshot,
    *,
    after: str | None = None,
    limit: int | None = None,
    contextual: Sequence[Relationship] = (),
) -> list[str]:
    stream = engine.lookup_resources(
        snap, "doc", "view", ANN, EMPTY_CONTEXT, contextual=contextual, after=after, limit=limit
    )
    return [r.resource_id async for r in stream]


async def test_pages_after_the_first_do_not_walk_again_and_agree_with_one_stream() -> None:
    store, snap = await world()
    engine = Engine(store, walks=DecisionCache[Candidates](8))
    whole = await ids(Engine(store), snap)
    assert len(whole) == DOCS + 1
    pages: list[str] = []
    reads: list[int] = []
    while True:
        before = store.reads
        page = await ids(engine, snap, after=pages[-1] if pages else None, limit=400)
        reads.append(store.reads - before)
        if not page:
            break
        pages += page
    assert pages == whole
    assert reads[0] > 0  # the first page walked
    # fails on ccee367: every later page read the reverse relationships again
    assert reads[1:] == [0] * (len(reads) - 1)


async def test_a_kept_walk_ends_with_the_first_expiry_it_read() -> None:
    store, snap = await world()
    engine = Engine(store, walks=DecisionCache[Candidates](8))
    assert "x0001" in await ids(engine, snap)
    later = replace(snap, now=NOW + timedelta(minutes=11))  # same revision, viewer expired
    before = store.reads
    assert "x0001" not in await ids(engine, later)
    assert store.reads > before  # walked again


async def test_request_only_relationships_are_never_kept() -> None:
    store, snap = await world()
    engine = Engine(store, walks=DecisionCache[Candidates](8))
    extra = [parse_relationship("doc:y0001#viewer@user:ann")]
    assert "y0001" in await ids(engine, snap, contextual=extra)
    assert "y0001" not in await ids(engine, snap)


async def test_a_fully_consistent_call_walks_itself() -> None:
    store, snap = await world()
    engine = Engine(store, walks=DecisionCache[Candidates](8))
    await ids(engine, snap)
    before = store.reads
    await ids(engine, replace(snap, shared_cache=False))
    assert store.reads > before
