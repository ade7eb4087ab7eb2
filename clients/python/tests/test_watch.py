"""Watch through the client: resumed after the server goes away, without gaps or repeats."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from authz_client import (
    AsyncAuthzClient,
    AuthzClient,
    InvalidArgumentError,
    RelationshipFilter,
    WatchEvent,
)
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
