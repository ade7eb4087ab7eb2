"""Watch over gRPC: where a stream starts, and which starting points are refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import grpc
import pytest

from authz_service.api.gen.authz.v1 import relationships_pb2
from authz_service.api.tokens import decode_token, encode_token
from authz_service.app import App
from authz_service.errors import FailedPrecondition
from authz_service.store.index import IndexedStore
from authz_service.store.postgres import PostgresStore
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import Api, bad_request_fields


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


def resources(reply: relationships_pb2.WatchResponse) -> list[str]:
    return [c.relationship.resource.object_id for c in reply.changes]


async def test_watch_without_after_starts_at_the_newest_revision(api: Api) -> None:
    await api.touch("acme", "document:before#viewer@user:ann")
    watch = api.relationships.Watch(relationships_pb2.WatchRequest(tenant="acme"))
    async with asyncio.timeout(10):
        await watch.initial_metadata()  # sent once the starting revision is fixed
        token = await api.touch("acme", "document:after#viewer@user:bob")
        first = await watch.read()
    watch.cancel()
    assert resources(first) == ["after"]
    # The same revision (a write's token also names the schema it was checked against).
    assert decode_token(first.changes_through.token, "acme") == decode_token(token, "acme")


async def test_watch_after_a_token_streams_what_followed_it(api: Api) -> None:
    start = await api.touch("acme", "document:one#viewer@user:ann")
    await api.touch("acme", "document:two#viewer@user:ann")
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after={"token": start})
    )
    async with asyncio.timeout(10):
        first = await watch.read()
    watch.cancel()
    assert resources(first) == ["two"]


async def test_watch_after_a_token_outside_the_history_is_failed_precondition(
    api: Api, pg_dsn: str
) -> None:
    first = await api.touch("acme", "document:one#viewer@user:ann")
    await api.delete("acme", "document:one#viewer@user:ann")
    await api.touch("acme", "document:two#viewer@user:ann")
    # Revision 2 (which ended snapshot 1) committed two days ago, beyond the 24 h
    # retention window: garbage collection may already have removed its delete.
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "UPDATE revisions SET committed_at = now() - interval '2 days'"
            " WHERE tenant = 'acme' AND revision <= 2"
        )
    finally:
        await conn.close()
    beyond_head = encode_token("acme", 99)  # would silently skip revisions 4..99
    for token, reason in ((first, "retention window"), (beyond_head, "unknown")):
        watch = api.relationships.Watch(
            relationships_pb2.WatchRequest(tenant="acme", after={"token": token})
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async with asyncio.timeout(10):
                await watch.read()
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason in (err.value.details() or "")


@pytest.mark.parametrize("revision", [2**31, 2**63, 2**64])
async def test_watch_after_a_revision_past_a_bigint_is_failed_precondition(
    api: Api, revision: int
) -> None:
    """Beyond 32 bits, `after` once reached the database as an int4 parameter."""
    await api.touch("acme", "document:one#viewer@user:ann")
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(
            tenant="acme", after={"token": encode_token("acme", revision)}
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async with asyncio.timeout(10):
            await watch.read()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    assert f"`{revision}`" in (err.value.details() or "")


async def test_watch_after_an_empty_token_is_invalid_argument(api: Api) -> None:
    """An empty token is no token (Check refuses it), but Watch read a present `after`
    holding one as an unset `after`: a client whose stored resume token was empty
    silently started at the newest revision and skipped every change before it."""
    await api.touch("acme", "document:one#viewer@user:ann")
    request = relationships_pb2.WatchRequest(tenant="acme", after={"token": ""})
    assert request.HasField("after")
    watch = api.relationships.Watch(request)
    async with asyncio.timeout(10):
        await watch.initial_metadata()  # the headers, or the refusal
        await api.touch("acme", "document:two#viewer@user:ann")  # streamed if accepted
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await watch.read()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "`after.token` is empty" in (refused.value.details() or "")
    assert bad_request_fields(refused.value) == ["after"]


async def test_a_filtered_watch_moves_its_resume_point_past_what_it_skipped(api: Api) -> None:
    """relationships.proto: empty responses move `changes_through` forward when committed
    revisions matched no filter, so a watcher resuming later does not reread them."""
    only_documents = relationships_pb2.WatchRequest(
        tenant="acme", filters=[{"resource_type": "document"}]
    )
    watch = api.relationships.Watch(only_documents)
    async with asyncio.timeout(10):
        await watch.initial_metadata()
        await api.touch("acme", "folder:f1#viewer@user:ann")
        skipped = await api.touch("acme", "folder:f2#viewer@user:ann")
        progress = await watch.read()
        while decode_token(progress.changes_through.token, "acme") < decode_token(skipped, "acme"):
            assert not progress.changes  # nothing of the folders is streamed
            progress = await watch.read()
        assert not progress.changes
        wanted = await api.touch("acme", "document:d#viewer@user:ann")
        change = await watch.read()
    watch.cancel()
    assert decode_token(progress.changes_through.token, "acme") == decode_token(skipped, "acme")
    assert resources(change) == ["d"]
    assert decode_token(change.changes_through.token, "acme") == decode_token(wanted, "acme")


async def test_a_watch_outlives_the_default_deadline(pg_dsn: str, tmp_path: Path) -> None:
    """A Watch streams "until the client cancels" (docs/api.md). The tenant gate, asking
    the registry about a tenant not seen lately, bound the call's default deadline to the
    rest of the call, so a watcher's stream ended DEADLINE_EXCEEDED after 5 s."""
    settings = server_settings(pg_dsn, tmp_path, default_deadline_ms=300, max_staleness_ms=1)
    app = await start_app(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            start = await api.touch("acme", "document:d0#viewer@user:ann")
            watch = api.relationships.Watch(
                relationships_pb2.WatchRequest(tenant="acme", after={"token": start})
            )
            await watch.initial_metadata()
            opened, seen, n = time.monotonic(), [], 0
            async with asyncio.timeout(30):
                # Three default deadlines of changes, each read as it comes.
                while time.monotonic() - opened < 3 * 0.3:
                    n += 1
                    await api.touch("acme", f"document:d{n}#viewer@user:ann")
                    seen += resources(await watch.read())
            watch.cancel()
    finally:
        await app.stop(grace=1.0)
    assert seen == [f"d{i}" for i in range(1, n + 1)]


async def test_a_stopping_server_ends_its_watches_unavailable(pg_dsn: str, tmp_path: Path) -> None:
    """An open Watch never ends by itself: a stopping server waited its whole grace for
    it and then cut it off (CANCELLED, which clients do not resume). It is ended at once
    with UNAVAILABLE, which the clients resume elsewhere from their last token."""
    app = await start_app(server_settings(pg_dsn, tmp_path, shutdown_grace_s=60.0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            watch = api.relationships.Watch(relationships_pb2.WatchRequest(tenant="acme"))
            await watch.initial_metadata()
            stopping = asyncio.create_task(app.stop())
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                async with asyncio.timeout(20):  # well inside the grace: a hang fails here
                    await watch.read()
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            async with asyncio.timeout(20):
                await stopping
    finally:
        await app.stop(grace=1.0)


async def test_a_write_that_changed_nothing_moves_a_connected_watch_on(api: Api) -> None:
    """A revision with no rows (a delete that matched nothing) was never reported, so a
    connected watcher's resume point stayed behind it until the retention window
    passed it, contrary to docs/api.md (it "never falls behind the retention window
    while it is connected")."""
    start = await api.touch("acme", "document:one#viewer@user:ann")
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after={"token": start})
    )
    await watch.initial_metadata()
    nothing = await api.delete("acme", "document:none#viewer@user:nobody")
    async with asyncio.timeout(10):
        reply = await watch.read()
    watch.cancel()
    assert resources(reply) == []
    assert decode_token(reply.changes_through.token, "acme") == decode_token(nothing, "acme")


async def test_a_watch_that_fell_behind_the_retention_window_ends(
    app: App, api: Api, pg_dsn: str
) -> None:
    """The window was checked only when the watch started: one whose reader fell behind
    it while connected went on after history was collected, and never reported the
    collected delete (a mirror kept a revoked relationship)."""
    start = await api.touch("acme", "document:victim#viewer@user:v")
    stream = app.relationships.watch("acme", decode_token(start, "acme"))  # not read yet
    await api.delete("acme", "document:victim#viewer@user:v")
    await api.touch("acme", "document:later#viewer@user:w")
    conn = await asyncpg.connect(pg_dsn)
    try:  # the delete's revision committed two days ago
        await conn.execute(
            "UPDATE revisions SET committed_at = now() - interval '2 days' "
            "WHERE tenant = 'acme' AND revision <= $1",
            decode_token(start, "acme") + 1,
        )
    finally:
        await conn.close()
    store = app.store.inner if isinstance(app.store, IndexedStore) else app.store
    assert isinstance(store, PostgresStore)
    await store.collect_garbage()
    with pytest.raises(FailedPrecondition, match="retention window"):
        async with asyncio.timeout(10):
            await anext(stream)


async def test_a_watch_after_a_token_from_a_newer_schema_is_failed_precondition(
    api: Api,
) -> None:
    # docs/api.md: a token whose schema position is newer than any stored schema (from
    # another deployment) is FAILED_PRECONDITION. Watch read only the token's revision.
    start = await api.touch("acme", "document:one#viewer@user:ann")
    forged = encode_token("acme", decode_token(start, "acme"), 999)
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after={"token": forged})
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async with asyncio.timeout(10):
            await watch.read()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "newer than the newest stored schema" in (refused.value.details() or "")


@pytest.mark.timeout(120)
async def test_watches_cancelled_while_writes_announce_leave_writes_working(
    app: App, api: Api
) -> None:
    """Clients dropping their Watch streams (a crash, a load balancer's reset) while
    writes commit. Watches waited on an asyncio.Condition through wait_for; a watch
    cancelled there could leave the condition's lock taken, and every later write then
    hung after committing, in every tenant, and the server no longer stopped."""
    for _ in range(3):
        head = await app.relationships.watch_start("acme", None)
        watches = [
            asyncio.create_task(anext(aiter(app.relationships.watch("globex", head))))
            for _ in range(50)
        ]
        writes = asyncio.create_task(_touch_many(api, 20))
        await api.touch("acme", "document:first#viewer@user:ann")
        for watch in watches:
            watch.cancel()
        async with asyncio.timeout(10):
            await asyncio.gather(*watches, return_exceptions=True)
            await writes
    async with asyncio.timeout(10):  # a hang guard: a wedged write never returns
        await api.touch("globex", "document:last#viewer@user:ann")


async def _touch_many(api: Api, count: int) -> None:
    for i in range(count):
        await api.touch("acme", f"document:d{i}#viewer@user:ann")
