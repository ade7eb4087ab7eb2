"""Long-lived streams and the server's concurrency cap: a tenant's open Watch streams and
ReadRelationships streams count against shares of their own, so one tenant holding
streams open cannot take the slots every other tenant's calls need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import relationships_pb2
from authz_service.app import App
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, Api

Watch = Any  # a grpc.aio stream call
Serve = Callable[..., Awaitable[tuple[App, Api]]]


@pytest.fixture
async def serve(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Serve]:
    """Starts a server with the settings given; each is stopped at the end."""
    apps: list[App] = []

    async def start(**overrides: object) -> tuple[App, Api]:
        app = await start_app(server_settings(pg_dsn, tmp_path, **overrides))
        apps.append(app)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        channels.append(channel)
        api = Api(channel)
        await api.write_schema()
        await api.touch("globex", "document:plan#viewer@user:alice")
        return app, api

    channels: list[grpc.aio.Channel] = []
    yield start
    for channel in channels:
        await channel.close()
    for app in apps:
        await app.stop(grace=1.0)


async def _open(api: Api, tenant: str) -> Watch:
    """A Watch from now on, once the server has admitted or refused it (the headers
    come once the starting revision is fixed; a refusal ends the call instead)."""
    watch = api.relationships.Watch(relationships_pb2.WatchRequest(tenant=tenant))
    await watch.initial_metadata()
    return watch


async def _outcome(watch: Watch) -> str:
    """ "streamed" when the watch delivers a change (one was written after it opened),
    else the refusal's code and message."""
    try:
        await watch.read()
    except grpc.aio.AioRpcError as err:
        return f"{err.code().name}: {err.details()}"
    return "streamed"


@pytest.mark.timeout(120)
async def test_one_tenants_watches_leave_room_for_other_tenants(serve: Serve) -> None:
    """520 idle watches of one tenant held 512 of gRPC's slots (AUTHZ_MAX_CONCURRENT_RPCS)
    and every other tenant's Check was RESOURCE_EXHAUSTED while they stayed open. The
    watches of the whole server are capped below it (a quarter by default)."""
    _, api = await serve(max_concurrent_rpcs=16)
    async with asyncio.timeout(60):
        watches = [await _open(api, "acme") for _ in range(16)]
        assert (await api.check("globex", "document:plan", "view", "user:alice")).decision == (
            ALLOWED
        )
        await api.touch("acme", "document:d#viewer@user:ann")
        outcomes = [await _outcome(w) for w in watches]
    for watch in watches:
        watch.cancel()
    assert outcomes.count("streamed") == 4
    assert set(outcomes) == {
        "streamed",
        "RESOURCE_EXHAUSTED: the server already has 4 watches open, the limit "
        "AUTHZ_MAX_WATCHES = 4",
    }


@pytest.mark.timeout(120)
async def test_a_tenant_past_its_watch_share_is_refused_while_others_watch(
    serve: Serve,
) -> None:
    app, api = await serve()  # the defaults: 32 watches a tenant, 128 in all
    async with asyncio.timeout(60):
        watches = [await _open(api, "acme") for _ in range(33)]
        other = await _open(api, "globex")
        await api.touch("acme", "document:d#viewer@user:ann")
        await api.touch("globex", "document:d#viewer@user:ann")
        outcomes = [await _outcome(w) for w in watches]
        assert await _outcome(other) == "streamed"
    assert outcomes[:32] == ["streamed"] * 32
    assert outcomes[32] == (
        "RESOURCE_EXHAUSTED: tenant `acme` already has 32 watches open, the limit "
        "AUTHZ_TENANT_MAX_WATCHES = 32"
    )
    # A watch that ends gives its slot back.
    watches[0].cancel()
    while app.relationships.watches.tenants.in_flight("acme") == 32:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0)
    async with asyncio.timeout(60):
        again = await _open(api, "acme")
        await api.touch("acme", "document:e#viewer@user:ann")
        assert await _outcome(again) == "streamed"
    for watch in [*watches, other, again]:
        watch.cancel()


@pytest.mark.timeout(120)
async def test_an_open_read_relationships_stream_holds_one_of_its_tenants_slots(
    serve: Serve,
) -> None:
    """ReadRelationships was not counted in AUTHZ_TENANT_MAX_CONCURRENT_RPCS: a tenant's
    reads held open took slots of the server beyond its share."""
    app, api = await serve(tenant_max_concurrent_rpcs=1)
    await api.touch("acme", "document:plan#viewer@user:alice")
    reading, release = asyncio.Event(), asyncio.Event()
    read = app.relationships.read

    async def held_read(*args: Any, **kwargs: Any) -> Any:
        reading.set()
        await release.wait()
        return await read(*args, **kwargs)

    app.relationships.read = held_read  # type: ignore[method-assign]
    stream = api.relationships.ReadRelationships(
        relationships_pb2.ReadRelationshipsRequest(tenant="acme")
    )
    async with asyncio.timeout(60):
        first = asyncio.ensure_future(stream.read())
        await reading.wait()  # the stream is open, inside its first page
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.check("acme", "document:plan", "view", "user:alice")
        assert (await api.check("globex", "document:plan", "view", "user:alice")).decision == (
            ALLOWED
        )
        release.set()
        assert (await first).relationship.resource.object_id == "plan"
        assert await stream.code() == grpc.StatusCode.OK
        # The stream is over, and its slot free again.
        assert (await api.check("acme", "document:plan", "view", "user:alice")).decision == (
            ALLOWED
        )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "AUTHZ_TENANT_MAX_CONCURRENT_RPCS = 1" in (refused.value.details() or "")
