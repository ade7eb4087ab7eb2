"""PostgresStore with a hot standby: which server answers a read, and that a replica
that has not replayed a revision never answers for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from authz_service import deadline
from authz_service.errors import DeadlineExceeded
from authz_service.model import (
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectRef,
    UpdateOp,
)
from authz_service.store.postgres import PostgresStore, connect
from authz_service.store.postgres.replicas import ReplicaStats
from authz_service.store.routing import require_primary
from tests.api.blackhole import Blackhole
from tests.replica.cluster import Cluster
from tests.replica.conftest import replayed_everything, set_replay, until

GRANT = Relationship(ObjectRef("doc", "d1"), "viewer", SubjectRef("user", "alice"))
VIEWERS = RelationshipFilter("doc", ("d1",), "viewer")


async def open_store(cluster: Cluster, max_lag_s: float) -> PostgresStore:
    return await connect(
        cluster.primary.dsn,
        min_size=1,
        max_size=4,
        replica_dsns=[cluster.replica.dsn],
        replica_max_lag_s=max_lag_s,
    )


@pytest.fixture
async def store(fresh: Cluster) -> AsyncIterator[PostgresStore]:
    # A bound far above any lag here: every read tries the replica, so the guard alone
    # must keep it from answering for a revision it has not replayed.
    opened = await open_store(fresh, max_lag_s=60.0)
    yield opened
    await opened.close()


def stats(store: PostgresStore) -> ReplicaStats:
    [replica] = store.replica_stats()
    return replica


async def test_a_read_goes_to_the_replica_once_it_has_replayed_the_revision(
    fresh: Cluster, store: PostgresStore
) -> None:
    revision = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
    await replayed_everything(fresh)
    before = stats(store)
    assert before.usable
    assert await store.read("acme", revision, VIEWERS) == [GRANT]
    assert await store.read("acme", revision, RelationshipFilter("doc", ("d2",))) == []
    after = stats(store)
    assert (after.reads, after.behind, after.errors) == (before.reads + 2, before.behind, 0)


async def test_a_call_that_requires_the_primary_never_reads_a_replica(
    fresh: Cluster, store: PostgresStore
) -> None:
    revision = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
    await replayed_everything(fresh)
    before = stats(store)

    async def fully_consistent_call() -> list[Relationship]:
        require_primary()  # what the resolver does for fully_consistent
        return await store.read("acme", revision, VIEWERS)

    assert await asyncio.create_task(fully_consistent_call()) == [GRANT]
    after = stats(store)
    assert (after.reads, after.behind, after.errors) == (before.reads, before.behind, 0)
    # Only that call: the next one is the replica's again.
    assert await store.read("acme", revision, VIEWERS) == [GRANT]
    assert stats(store).reads == before.reads + 1


async def test_a_paused_replica_never_answers_for_a_revision_it_has_not_replayed(
    fresh: Cluster, store: PostgresStore
) -> None:
    granted = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
    await replayed_everything(fresh)
    await set_replay(fresh, paused=True)
    revoked, _ = await store.delete("acme", VIEWERS)
    before = stats(store)
    # The replica still holds the grant: answering from it would be the stale ALLOWED.
    assert await store.read("acme", revoked, VIEWERS) == []
    assert stats(store).behind == before.behind + 1
    # The revision it does hold is still its to answer.
    assert await store.read("acme", granted, VIEWERS) == [GRANT]
    assert stats(store).reads == before.reads + 1
    await set_replay(fresh, paused=False)
    await replayed_everything(fresh)
    assert await store.read("acme", revoked, VIEWERS) == []
    assert stats(store).reads == before.reads + 2


async def test_a_replica_behind_the_lag_bound_is_skipped_without_a_round_trip(
    fresh: Cluster,
) -> None:
    store = await open_store(fresh, max_lag_s=0.2)
    try:
        assert stats(store).usable
        await set_replay(fresh, paused=True)
        revision = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
        await until(lambda: not stats(store).usable)
        before = stats(store)
        assert await store.read("acme", revision, VIEWERS) == [GRANT]
        after = stats(store)
        assert (after.reads, after.behind, after.errors) == (
            before.reads,
            before.behind,
            before.errors,
        )
        await set_replay(fresh, paused=False)
        await until(lambda: stats(store).usable)
        assert await store.read("acme", revision, VIEWERS) == [GRANT]
        assert stats(store).reads == after.reads + 1
    finally:
        await store.close()


async def test_a_stopped_replica_is_skipped_and_used_again_once_it_is_back(
    fresh: Cluster, store: PostgresStore
) -> None:
    revision = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
    fresh.replica.stop()
    # Whether the monitor or the read notices first, the primary answers.
    assert await store.read("acme", revision, VIEWERS) == [GRANT]
    await until(lambda: not stats(store).usable)
    assert await store.read("acme", revision, VIEWERS) == [GRANT]
    reads = stats(store).reads
    fresh.replica.start()
    await until(lambda: stats(store).usable)
    assert await store.read("acme", revision, VIEWERS) == [GRANT]
    assert stats(store).reads == reads + 1


async def test_a_call_out_of_time_fails_without_blaming_the_replica(
    fresh: Cluster, store: PostgresStore
) -> None:
    revision = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
    await replayed_everything(fresh)
    with deadline.within(time.monotonic()), pytest.raises(DeadlineExceeded):
        await store.read("acme", revision, VIEWERS)
    assert stats(store).usable
    assert stats(store).errors == 0


async def test_a_replica_down_at_start_leaves_reads_on_the_primary(fresh: Cluster) -> None:
    fresh.replica.stop()
    store = await open_store(fresh, max_lag_s=1.0)
    try:
        revision = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
        assert not stats(store).usable
        assert await store.read("acme", revision, VIEWERS) == [GRANT]
        assert stats(store).reads == 0
    finally:
        await store.close()


async def test_a_replica_behind_a_silent_network_leaves_the_primary_time_to_answer(
    fresh: Cluster,
) -> None:
    """docs/replicas.md: a replica's error never reaches the decision. A read already
    sent to a replica whose network then drops every packet must not hold the call until
    its deadline: the replica gets part of the time left, the primary the rest."""
    async with Blackhole("127.0.0.1", fresh.replica.port) as hole:
        store = await connect(
            fresh.primary.dsn,
            min_size=1,
            max_size=4,
            replica_dsns=[f"postgresql://postgres@127.0.0.1:{hole.port}/postgres"],
            replica_max_lag_s=60.0,
        )
        try:
            revision = await store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, GRANT)])
            await replayed_everything(fresh)
            await until(lambda: stats(store).usable)
            assert await store.read("acme", revision, VIEWERS) == [GRANT]
            assert stats(store).reads == 1  # the replica answers while the network works
            hole.blackhole()
            # Half of a short deadline is too little to blame the replica for (under its
            # 1 s timeout): the primary answers and the replica keeps its record.
            with deadline.within(time.monotonic() + 1.0):
                assert await store.read("acme", revision, VIEWERS) == [GRANT]
            assert stats(store).errors == 0
            # With time to spare, the replica (if the monitor has not already found it
            # silent) is given half, then marked unusable, and the primary answers.
            with deadline.within(time.monotonic() + 4.0):
                assert await store.read("acme", revision, VIEWERS) == [GRANT]
            assert not stats(store).usable
        finally:
            await store.close()
