"""The SCIM sync status (GetScimSync's last push and last error) is the same whichever
server process answers: it is stored with the tenant, not kept by the process that
answered the push (with several workers, or replicas, the one asked for the status is
often not the one the IdP pushed to)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import tenancy_pb2, tenancy_pb2_grpc
from authz_service.app import App
from authz_service.credentials import Scope
from authz_service.store.memory import MemoryStore
from authz_service.store.postgres import PostgresStore, connect
from authz_service.store.scim import MemoryScimRecords, ScimRecords, ScimSync
from tests.api.conftest import server_settings
from tests.scim.conftest import ScimServer
from tests.scim.test_protocol import create, user
from tests.tenancy.helpers import KeyedChannel


@pytest.fixture
async def other(scim: ScimServer, pg_dsn: str, tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    """A second server process on the same database, without the SCIM listener (as a
    second worker or a replica), keys on."""
    settings = server_settings(pg_dsn, tmp_path / "other", auth=True)
    app = await App.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield channel
    finally:
        await app.stop(grace=1.0)


async def status_from(channel: grpc.aio.Channel, token: str) -> tenancy_pb2.ScimSyncStatus:
    stub = tenancy_pb2_grpc.TenancyServiceStub(KeyedChannel(channel, token))  # type: ignore[arg-type]
    reply = await stub.GetScimSync(tenancy_pb2.GetScimSyncRequest(tenant="acme"))
    return reply.status


async def test_another_process_reports_the_push_and_the_refusal(
    scim: ScimServer, other: grpc.aio.Channel
) -> None:
    # fails on 08982dc: the status lived in the process that answered the push, so the
    # other server reported no push and no error.
    token = await scim.key("acme", *Scope)
    before = datetime.now(UTC)
    async with await scim.http() as http:
        await create(http, "/Users", user("a@acme.example"))
        taken = await http.post("/Users", json=user("A@acme.example"))
        assert taken.status_code == 409
    here, there = await status_from(scim.channel, token), await status_from(other, token)
    assert there == here
    assert there.last_push.ToDatetime(UTC) >= before - timedelta(seconds=1)
    assert "already taken" in there.last_error
    assert there.last_error_time.ToDatetime(UTC) >= there.last_push.ToDatetime(UTC)
    assert there.users == 1


async def test_a_push_with_a_bad_key_or_to_an_unknown_tenant_is_not_recorded(
    scim: ScimServer,
) -> None:
    token = await scim.key("acme", *Scope)
    async with await scim.http() as http:
        http.headers["Authorization"] = "Bearer not-a-key"
        refused = await http.post("/Users", json=user("b@acme.example"))
        assert refused.status_code == 401
    status = await status_from(scim.channel, token)
    # fails on 08982dc: a request with a bad key was recorded as a successful push
    assert not status.HasField("last_push")
    assert not status.HasField("last_error_time")
    platform = await scim.key("*", Scope.SCIM)
    async with await scim.http("nobody") as http:
        http.headers["Authorization"] = f"Bearer {platform}"
        assert (await http.post("/Users", json=user("c@x.example"))).status_code == 404
    assert await scim.app.store.scim.sync("nobody") == ScimSync()


@asynccontextmanager
async def records(kind: str, dsn: str) -> AsyncIterator[ScimRecords]:
    if kind == "memory":
        yield MemoryScimRecords()
        return
    store = await connect(dsn)
    try:
        yield store.scim
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["memory", "postgres"])
async def test_an_older_note_does_not_replace_a_newer_one(kind: str, pg_dsn: str) -> None:
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    async with records(kind, pg_dsn) as store:
        assert await store.sync("acme") == ScimSync()
        await store.note_push("acme", at, None)
        await store.note_push("acme", at - timedelta(seconds=5), None)  # answered earlier
        await store.note_push("acme", at + timedelta(seconds=1), "bad filter")
        await store.note_push("acme", at, "older error")
        assert await store.sync("acme") == ScimSync(at, at + timedelta(seconds=1), "bad filter")
        await store.note_push("acme", at + timedelta(seconds=2), None)
        found = await store.sync("acme")
        assert found.last_push == at + timedelta(seconds=2)
        assert found.last_error == "bad filter"  # a later success keeps the last error
        assert await store.sync("globex") == ScimSync()


@asynccontextmanager
async def stores(kind: str, dsn: str) -> AsyncIterator[MemoryStore | PostgresStore]:
    if kind == "memory":
        yield MemoryStore()
        return
    store = await connect(dsn)
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["memory", "postgres"])
async def test_a_note_that_reaches_the_store_after_a_purge_is_not_kept(
    kind: str, pg_dsn: str
) -> None:
    # A push answered while the tenant existed, its note stored after the tenant was
    # purged (ProvisioningService checks the tenant, then writes: a purge can commit in
    # between). Kept, it would show as the sync status of a new tenant of the same name.
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    async with stores(kind, pg_dsn) as store:
        await store.tenants.create("acme")
        await store.scim.note_push("acme", at, None)
        await store.tenants.purge("acme")
        await store.scim.note_push("acme", at + timedelta(seconds=1), None)
        await store.scim.note_push("acme", at + timedelta(seconds=2), "late refusal")
        await store.tenants.create("acme")
        # fails on 2b05a03: the late notes were stored for the purged tenant
        assert await store.scim.sync("acme") == ScimSync()


async def test_a_note_sent_while_a_purge_is_in_flight_waits_for_it_and_is_dropped(
    pg_dsn: str,
) -> None:
    # The purge's own steps, held open in a transaction: the tenant row locked, the status
    # deleted, the tenant marked deleted. A note that only checked the tenant without
    # waiting would see it alive (the purge has not committed) and be kept.
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    async with stores("postgres", pg_dsn) as store:
        assert isinstance(store, PostgresStore)
        await store.tenants.create("acme")
        await store.scim.note_push("acme", at, None)
        async with store.pool.acquire() as purging:
            transaction = purging.transaction()
            await transaction.start()
            await purging.execute("SELECT 1 FROM tenants WHERE tenant = 'acme' FOR UPDATE")
            await purging.execute("DELETE FROM scim_sync WHERE tenant = 'acme'")
            await purging.execute("UPDATE tenants SET state = 'deleted' WHERE tenant = 'acme'")
            note = asyncio.create_task(store.scim.note_push("acme", at, "refused"))
            async with asyncio.timeout(10):
                while not await purging.fetchval(  # noqa: ASYNC110 - polls the server
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                ):
                    await asyncio.sleep(0.01)
            assert not note.done()
            await transaction.commit()
        await note
        await store.tenants.create("acme")
        assert await store.scim.sync("acme") == ScimSync()
