"""A replica that stops answering with reads in flight (a network that silently drops
packets, a frozen server) must not hold a call: a call without a client deadline has the
server's default one (README, AUTHZ_DEFAULT_DEADLINE_MS: it bounds every database read
of the call), the replica gets half of what is left, and the primary answers in the
other half (docs/replicas.md). ReadRelationships and the tenancy reads bound nothing:
with the standby stopped (SIGSTOP) after a warm connection, a ReadRelationships without
a deadline waited until it resumed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, relationships_pb2, tenancy_pb2
from tests.api.blackhole import Blackhole
from tests.api.helpers import Api, obj
from tests.replica.cluster import Cluster
from tests.replica.conftest import replayed_everything, until
from tests.replica.test_service import replica, serving
from tests.tenancy.helpers import tenancy_stub

DEADLINE_MS = 3000  # the replica's half (1.5 s) is past its 1 s timeout: it is blamed
HANG_GUARD_S = 3 * DEADLINE_MS / 1000  # a hang fails here instead of stalling the run
WARM = 4  # reads at once before the network goes silent: connections the pool keeps open

Call = Callable[[grpc.aio.Channel], Awaitable[Any]]


# Each call, and what of its answer must not depend on which server read it (tokens
# and cursors name a revision, which may have moved on between two calls).


async def read_relationships(channel: grpc.aio.Channel) -> Any:
    stream = Api(channel).relationships.ReadRelationships(
        relationships_pb2.ReadRelationshipsRequest(
            tenant="acme", filter=core_pb2.RelationshipFilter(resource_type="document")
        )
    )
    return [str(item.relationship) async for item in stream]


async def get_subject_status(channel: grpc.aio.Channel) -> Any:
    found = await tenancy_stub(channel).GetSubjectStatus(
        tenancy_pb2.GetSubjectStatusRequest(tenant="acme", subject=obj("user:alice"))
    )
    return found.status


async def list_roles(channel: grpc.aio.Channel) -> Any:
    found = await tenancy_stub(channel).ListRoles(tenancy_pb2.ListRolesRequest(tenant="acme"))
    return [role.name for role in found.roles]


async def list_bindings(channel: grpc.aio.Channel) -> Any:
    found = await tenancy_stub(channel).ListBindings(tenancy_pb2.ListBindingsRequest(tenant="acme"))
    return [binding.binding_id for binding in found.bindings]


CALLS: dict[str, Call] = {
    "ReadRelationships": read_relationships,
    "GetSubjectStatus": get_subject_status,
    "ListRoles": list_roles,
    "ListBindings": list_bindings,
}


@pytest.mark.parametrize("name", CALLS)
async def test_a_silent_replica_leaves_the_primary_time_to_answer(
    fresh: Cluster, tmp_path: Path, name: str
) -> None:
    call = CALLS[name]
    async with (
        Blackhole("127.0.0.1", fresh.replica.port) as hole,
        serving(
            fresh,
            tmp_path,
            database_replica_urls=f"postgresql://postgres@127.0.0.1:{hole.port}/postgres",
            default_deadline_ms=DEADLINE_MS,
        ) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        api = Api(channel)
        await api.write_schema()
        await api.touch("acme", "document:d#viewer@user:alice")
        await replayed_everything(fresh)
        await until(lambda: replica(app).usable)
        # Several calls at once, so that the pool holds several open connections: the
        # call below finds one while the monitor's probe waits on another.
        await asyncio.gather(*(call(channel) for _ in range(WARM)))
        assert replica(app).reads > 0  # the call reads the replica while it answers
        expected = await call(channel)
        hole.blackhole()
        started = time.monotonic()
        async with asyncio.timeout(HANG_GUARD_S):
            assert await call(channel) == expected
        assert time.monotonic() - started < DEADLINE_MS / 1000
        assert replica(app).errors == 1  # the call tried the replica, then the primary
