"""Watch through the client: resumed after the server goes away, without gaps or repeats."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from authz_client import (
    AsyncAuthzClient,
    AuthzClient,
    InvalidArgumentError,
    RelationshipFilter,
    WatchEvent,
    parse_relationship,
)
from authz_client._stubs import core_pb2, relationships_pb2, relationships_pb2_grpc
from client_support import ServerProcess, free_port

# A watch is an open stream: let the draining server end it soon.
FAST_DRAIN = {"AUTHZ_SHUTDOWN_GRACE_S": "1"}


def _server(pg_dsn: str, target: str) -> ServerProcess:
    return ServerProcess(target, flags=("--database-url", pg_dsn), env=FAST_DRAIN)


def _texts(event: WatchEvent) -> list[str]:
    return [c.text for c in event.changes]


async def test_watch_resumes_across_a_server_restart(pg_dsn: str) -> None:
    target = f"127.0.0.1:{free_port()}"
    tenant = f"watch-{uuid.uuid4().hex[:10]}"
    first = _server(pg_dsn, target)
    await asyncio.to_thread(first.start)
    second: ServerProcess | None = None
    try:
        async with AsyncAuthzClient(
            target, tenant=tenant, retries=400, backoff=(0.05, 0.2), timeout=60
        ) as client:
            await client.create_tenant(tenant)
            start = (await client.get_tenant()).head
            events = client.watch(after=start)
            await client.write_relationships(["document:a#viewer@user:erin"])
            assert _texts(await asyncio.wait_for(anext(events), 30)) == [
                "document:a#viewer@user:erin"
            ]

            await asyncio.to_thread(first.stop)  # the watch loses its server
            # Written while no server runs... then the server comes back on the same port.
            pending = asyncio.create_task(anext(events))
            second = _server(pg_dsn, target)
            await asyncio.to_thread(second.start)
            await client.write_relationships(["document:b#viewer@user:erin"])
            await client.write_relationships(["document:c#viewer@user:erin"], operation="touch")
            resumed = [await asyncio.wait_for(pending, 60)]
            while sum(len(e.changes) for e in resumed) < 2:
                resumed.append(await asyncio.wait_for(anext(events), 30))
            await events.aclose()  # type: ignore[attr-defined]  # an async generator
    finally:
        if second is not None:
            await asyncio.to_thread(second.stop)
        await asyncio.to_thread(first.stop)

    # Exactly the two later writes: the first one is not repeated, none is missed.
    assert [t for e in resumed for t in _texts(e)] == [
        "document:b#viewer@user:erin",
        "document:c#viewer@user:erin",
    ]


def test_sync_watch_with_a_filter(pg_server: str) -> None:
    tenant = f"watch-{uuid.uuid4().hex[:10]}"
    with AuthzClient(pg_server, tenant=tenant) as client:
        client.create_tenant(tenant)
        start = client.get_tenant().head
        client.write_relationships(["folder:x#viewer@user:erin"])
        client.write_relationships(["document:y#viewer@user:erin"])
        only_documents = [RelationshipFilter(resource_type="document")]
        events = client.watch(after=start, filters=only_documents)
        event = next(events)
        events.close()  # type: ignore[attr-defined]  # a generator
    assert _texts(event) == ["document:y#viewer@user:erin"]
    assert event.changes[0].operation == "touch"
    assert event.token


async def test_a_refused_watch_is_not_retried(client: AsyncAuthzClient) -> None:
    events = client.watch(after="not-a-token")
    with pytest.raises(InvalidArgumentError) as caught:
        await anext(events)
    assert [v.field for v in caught.value.field_violations] == ["after"]


class _ClosingWatch(relationships_pb2_grpc.RelationshipsServiceServicer):
    """A Watch that sends one revision per stream and then ends it cleanly, as a server
    going away may. The real server ends a watch only when it stops, so this behaviour
    needs a stand-in server (a real gRPC server on loopback) to be pinned."""

    def __init__(self) -> None:
        self.afters: list[str] = []

    async def Watch(
        self, request: relationships_pb2.WatchRequest, context: Any
    ) -> AsyncIterator[relationships_pb2.WatchResponse]:
        self.afters.append(request.after.token)
        revision = len(self.afters)
        yield relationships_pb2.WatchResponse(
            changes=[
                relationships_pb2.RelationshipChange(
                    operation=relationships_pb2.RelationshipChange.OPERATION_TOUCH,
                    relationship=parse_relationship(f"document:{revision}#viewer@user:erin"),
                )
            ],
            changes_through=core_pb2.ConsistencyToken(token=f"rev-{revision}"),
        )


async def test_a_stream_the_server_ends_is_reopened_after_the_last_token() -> None:
    servicer = _ClosingWatch()
    server = grpc.aio.server()
    relationships_pb2_grpc.add_RelationshipsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with AsyncAuthzClient(
            f"127.0.0.1:{port}", tenant="t", retries=2, backoff=(0.001, 0.002)
        ) as client:
            events = client.watch(after="rev-0")
            received = [await anext(events) for _ in range(3)]
            await events.aclose()  # type: ignore[attr-defined]  # an async generator
    finally:
        await server.stop(None)
    assert [e.token for e in received] == ["rev-1", "rev-2", "rev-3"]
    assert servicer.afters == ["rev-0", "rev-1", "rev-2"]  # each reopening resumes after


def test_a_large_revision_arrives_in_parts(pg_server: str) -> None:
    """A revision over 1,000 changes comes as several events; only the last names it,
    the parts before it keep the token of the revision before."""
    tenant = f"watch-{uuid.uuid4().hex[:10]}"
    with AuthzClient(pg_server, tenant=tenant) as client:
        client.create_tenant(tenant)
        texts = [f"document:d{i:04d}#viewer@user:erin" for i in range(1500)]
        client.write_relationships(texts[:1000])
        start = client.write_relationships(texts[1000:]).token
        deleted = client.delete_relationships(
            RelationshipFilter(subject_type="user", subject_ids=("erin",))
        )
        events = client.watch(after=start)
        received = [next(events)]
        while received[-1].partial:
            received.append(next(events))
        events.close()  # type: ignore[attr-defined]  # a generator
    assert len(received) > 1
    assert [e.partial for e in received] == [True] * (len(received) - 1) + [False]
    assert [c.text for e in received for c in e.changes] == texts
    assert {c.operation for e in received for c in e.changes} == {"delete"}
    assert len({e.token for e in received[:-1]}) == 1
    assert received[-1].token != received[0].token
    assert deleted.deleted_count == 1500


class _DroppingInsideARevision(relationships_pb2_grpc.RelationshipsServiceServicer):
    """A Watch that sends the first part of a revision and then ends the stream, as a
    server going away may; reopened, it sends the whole revision."""

    def __init__(self) -> None:
        self.afters: list[str] = []

    async def Watch(
        self, request: relationships_pb2.WatchRequest, context: Any
    ) -> AsyncIterator[relationships_pb2.WatchResponse]:
        self.afters.append(request.after.token)
        first = len(self.afters) == 1
        for text, partial in (("a", True), ("b", False))[: 1 if first else 2]:
            yield relationships_pb2.WatchResponse(
                changes=[
                    relationships_pb2.RelationshipChange(
                        operation=relationships_pb2.RelationshipChange.OPERATION_TOUCH,
                        relationship=parse_relationship(f"document:{text}#viewer@user:erin"),
                    )
                ],
                changes_through=core_pb2.ConsistencyToken(token="rev-1" if partial else "rev-2"),
                partial=partial,
            )
        if not first:
            await asyncio.Event().wait()  # open until the client cancels


async def test_a_drop_inside_a_revision_resumes_at_its_start() -> None:
    servicer = _DroppingInsideARevision()
    server = grpc.aio.server()
    relationships_pb2_grpc.add_RelationshipsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with AsyncAuthzClient(
            f"127.0.0.1:{port}", tenant="t", retries=2, backoff=(0.001, 0.002)
        ) as client:
            events = client.watch(after="rev-1")
            received = [await anext(events) for _ in range(3)]
            await events.aclose()  # type: ignore[attr-defined]  # an async generator
    finally:
        await server.stop(None)
    assert [(_texts(e), e.token, e.partial) for e in received] == [
        (["document:a#viewer@user:erin"], "rev-1", True),
        (["document:a#viewer@user:erin"], "rev-1", True),  # the revision again, whole
        (["document:b#viewer@user:erin"], "rev-2", False),
    ]
    assert servicer.afters == ["rev-1", "rev-1"]  # not inside the revision
