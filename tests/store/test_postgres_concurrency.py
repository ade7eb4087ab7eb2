"""Revisions under concurrency: writers of one tenant serialize, revisions are dense and
become visible in order, and another replica (pool) reads its own writes' tokens."""

from __future__ import annotations

import asyncio

from authz_service.model import RelationshipFilter, RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.store.postgres import PostgresStore, connect


def touch(text: str) -> RelationshipUpdate:
    return RelationshipUpdate(UpdateOp.TOUCH, parse_relationship(text))


async def test_concurrent_writers_of_one_tenant_get_dense_distinct_revisions(
    pg_store: PostgresStore,
) -> None:
    revisions = await asyncio.gather(
        *(pg_store.write("acme", [touch(f"doc:d{i}#viewer@user:ann")]) for i in range(40))
    )
    assert sorted(revisions) == list(range(1, 41))
    assert await pg_store.head_revision("acme") == 40
    # each revision holds exactly the one relationship its writer wrote
    for index, revision in enumerate(revisions):
        before = await pg_store.read("acme", revision - 1, RelationshipFilter())
        after = await pg_store.read("acme", revision, RelationshipFilter())
        assert {str(r) for r in after} - {str(r) for r in before} == {
            f"doc:d{index}#viewer@user:ann"
        }


async def test_a_token_from_one_replica_is_readable_on_another(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    other = await connect(pg_dsn, min_size=1, max_size=2)
    try:
        for i in range(20):
            token = await pg_store.write("acme", [touch(f"doc:d{i}#viewer@user:ann")])
            assert await other.head_revision("acme") >= token
            await other.check_revision("acme", token)
            seen = await other.read("acme", token, RelationshipFilter("doc", (f"d{i}",)))
            assert [str(r) for r in seen] == [f"doc:d{i}#viewer@user:ann"]
    finally:
        await other.close()


async def test_readers_never_see_a_revision_before_its_predecessors(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    reader = await connect(pg_dsn, min_size=1, max_size=2)
    done = asyncio.Event()

    async def watch_heads() -> None:
        while not done.is_set():
            head = await reader.head_revision("acme")
            live = await reader.read("acme", head, RelationshipFilter())
            assert len(live) == head  # revision R holds exactly the first R writes

    async def write_all() -> None:
        try:
            await asyncio.gather(
                *(pg_store.write("acme", [touch(f"doc:d{i}#viewer@user:ann")]) for i in range(60))
            )
        finally:
            done.set()

    try:
        await asyncio.gather(watch_heads(), write_all())
    finally:
        await reader.close()
