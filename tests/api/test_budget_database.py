"""A database behind a network that silently drops packets (issue 10): a call without a
client deadline still ends within the server's default deadline, with an error and
never ALLOWED, nor a success it cannot know. Once a call hung about 22 s with a 5 s
default deadline; lookups and writes hung until the test's own timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from authz_service import deadline
from authz_service.api.gen.authz.v1 import (
    core_pb2,
    keys_pb2,
    keys_pb2_grpc,
    permissions_pb2,
    relationships_pb2,
    schema_pb2,
    service_accounts_pb2,
    service_accounts_pb2_grpc,
    tenants_pb2,
    tenants_pb2_grpc,
)
from authz_service.errors import Unavailable
from authz_service.store import index as index_module
from authz_service.store import postgres
from authz_service.store.postgres.writes import bump_head
from tests.api.blackhole import Blackhole
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, SCHEMA, Api, obj, rel, subj

DEADLINE_MS = 1000
# A hang guard, not a speed assertion: the call must not outlive its deadline by much.
HANG_GUARD_S = 3 * DEADLINE_MS / 1000
FULLY = core_pb2.Consistency(fully_consistent=True)
NEW = "document:plan#viewer@user:carol"


@asynccontextmanager
async def blackholed(
    pg_dsn: str, tmp_path: Path, *, max_staleness_ms: int = 100
) -> AsyncIterator[tuple[Api, Blackhole]]:
    """A server on a database behind the proxy, with a schema and a relationship
    written; the caller turns the proxy into a black hole."""
    async with Blackhole("127.0.0.1", 5432) as hole:
        dsn = pg_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{hole.port}")
        assert dsn != pg_dsn
        app = await start_app(
            server_settings(
                dsn, tmp_path, default_deadline_ms=DEADLINE_MS, max_staleness_ms=max_staleness_ms
            )
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                api = Api(channel)
                await api.write_schema()
                await api.touch("acme", "document:plan#viewer@user:alice")
                yield api, hole
        finally:
            await app.stop(grace=1.0)


async def ends_in_time(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error `call` ends with; fails the test if it outlives the hang guard."""
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async with asyncio.timeout(2 * HANG_GUARD_S):  # so that a hang fails, not stalls
            await call
    elapsed = time.monotonic() - started
    assert caught.value.code() in (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
    )
    assert elapsed < HANG_GUARD_S, f"the call hung {elapsed:.1f}s"
    return caught.value


@pytest.mark.parametrize(
    "consistency",
    [{}, {"full": True}],
    ids=["minimize_latency", "fully_consistent"],
)
@pytest.mark.timeout(120)
async def test_blackholed_database_gives_an_error_within_the_deadline(
    pg_dsn: str, tmp_path: Path, consistency: dict[str, Any]
) -> None:
    async with blackholed(pg_dsn, tmp_path) as (api, hole):
        hole.blackhole()
        await ends_in_time(api.check("acme", "document:plan", "view", "user:bob", **consistency))


async def _drain(stream: Any, seen: list[Any]) -> None:
    async for item in stream:
        seen.append(item)


def _lookup_resources(api: Api) -> Any:
    return api.permissions.LookupResources(
        permissions_pb2.LookupResourcesRequest(
            tenant="acme",
            resource_type="document",
            permission="view",
            subject=subj("user:alice"),
            consistency=FULLY,
        )
    )


def _lookup_subjects(api: Api) -> Any:
    return api.permissions.LookupSubjects(
        permissions_pb2.LookupSubjectsRequest(
            tenant="acme",
            resource=obj("document:plan"),
            permission="view",
            subject_type="user",
            consistency=FULLY,
        )
    )


@pytest.mark.parametrize(
    "lookup", [_lookup_resources, _lookup_subjects], ids=["resources", "subjects"]
)
@pytest.mark.timeout(120)
async def test_blackholed_database_ends_a_lookup_within_the_deadline(
    pg_dsn: str, tmp_path: Path, lookup: Callable[[Api], Any]
) -> None:
    async with blackholed(pg_dsn, tmp_path) as (api, hole):
        hole.blackhole()
        seen: list[Any] = []
        await ends_in_time(_drain(lookup(api), seen))
        assert seen == []  # a fully consistent lookup cannot know anything without the head


@pytest.mark.timeout(120)
async def test_blackholed_database_ends_a_relationship_read_within_the_deadline(
    pg_dsn: str, tmp_path: Path
) -> None:
    # The tenant was seen moments ago, so the tenant gate admits the call from memory
    # without a database read of its own, and minimize_latency reads at the revision
    # the Check pinned: the handler's read of the rows is what must end it. (With
    # fully_consistent, the gate's own bounded read ended the call, whatever the handler.)
    async with blackholed(pg_dsn, tmp_path, max_staleness_ms=60_000) as (api, hole):
        await api.check("acme", "document:plan", "view", "user:alice")
        hole.blackhole()
        seen: list[Any] = []
        read = api.relationships.ReadRelationships(
            relationships_pb2.ReadRelationshipsRequest(
                tenant="acme", filter=core_pb2.RelationshipFilter(resource_type="document")
            )
        )
        await ends_in_time(_drain(read, seen))
        assert seen == []


def _admin_reads(channel: grpc.aio.Channel) -> dict[str, Callable[[], Awaitable[Any]]]:
    keys = keys_pb2_grpc.KeysServiceStub(channel)
    accounts = service_accounts_pb2_grpc.ServiceAccountsServiceStub(channel)
    tenants = tenants_pb2_grpc.TenantServiceStub(channel)
    return {
        "GetTenant": lambda: tenants.GetTenant(tenants_pb2.GetTenantRequest(name="acme")),
        "ListTenants": lambda: tenants.ListTenants(tenants_pb2.ListTenantsRequest()),
        "ListKeys": lambda: keys.ListKeys(keys_pb2.ListKeysRequest(tenant="acme")),
        "ListServiceAccounts": lambda: accounts.ListServiceAccounts(
            service_accounts_pb2.ListServiceAccountsRequest(tenant="acme")
        ),
        "GetServiceAccount": lambda: accounts.GetServiceAccount(
            service_accounts_pb2.GetServiceAccountRequest(tenant="acme", account_id="ci")
        ),
        "ListServiceAccountKeys": lambda: accounts.ListServiceAccountKeys(
            service_accounts_pb2.ListServiceAccountKeysRequest(tenant="acme", account_id="ci")
        ),
    }


ADMIN_READS = [
    "GetTenant",
    "ListTenants",
    "ListKeys",
    "ListServiceAccounts",
    "GetServiceAccount",
    "ListServiceAccountKeys",
]


@pytest.mark.parametrize("method", ADMIN_READS)
@pytest.mark.timeout(120)
async def test_blackholed_database_ends_an_admin_read_within_the_deadline(
    pg_dsn: str, tmp_path: Path, method: str
) -> None:
    """Admin reads bound no deadline of their own: with the database silent they hung
    for as long as the network did (the tenant gate's read is bounded, but these
    methods name no data tenant, or read after it)."""
    async with blackholed(pg_dsn, tmp_path, max_staleness_ms=60_000) as (api, hole):
        hole.blackhole()
        await ends_in_time(_admin_reads(api.channel)[method]())


@pytest.mark.timeout(120)
async def test_blackholed_database_ends_an_open_watch_unavailable(
    pg_dsn: str, tmp_path: Path
) -> None:
    """A Watch has no deadline, but each of its reads has the default one: a watch whose
    database went silent hung in its next read for as long as the network did (and held
    a server that was stopping). It now ends UNAVAILABLE, which the clients resume."""
    async with blackholed(pg_dsn, tmp_path) as (api, hole):
        watch = api.relationships.Watch(relationships_pb2.WatchRequest(tenant="acme"))
        await watch.initial_metadata()  # sent once the starting revision is fixed
        hole.blackhole()
        error = await ends_in_time(watch.read())
        assert error.code() == grpc.StatusCode.UNAVAILABLE


async def _stored(pg_dsn: str, text: str) -> bool:
    """Whether the relationship is live, asked directly (not through the proxy)."""
    r = rel(text)
    conn = await asyncpg.connect(pg_dsn)
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM relationships WHERE tenant = 'acme'"
                " AND subject_id = $1 AND deleted_rev IS NULL",
                r.subject.object.object_id,
            )
        )
    finally:
        await conn.close()


@pytest.mark.timeout(120)
async def test_blackholed_database_ends_a_write_within_the_deadline(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with blackholed(pg_dsn, tmp_path) as (api, hole):
        hole.blackhole()
        error = await ends_in_time(
            api.relationships.WriteRelationships(
                relationships_pb2.WriteRelationshipsRequest(
                    tenant="acme",
                    updates=[
                        relationships_pb2.RelationshipUpdate(
                            operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
                            relationship=rel(NEW),
                        )
                    ],
                    idempotency_key="k1",
                )
            )
        )
        # Only a write that says its outcome is unknown may have been applied.
        if await _stored(pg_dsn, NEW):
            assert "may have been applied" in (error.details() or "")


@pytest.mark.timeout(120)
async def test_blackholed_database_ends_a_schema_write_within_the_deadline(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with blackholed(pg_dsn, tmp_path) as (api, hole):
        hole.blackhole()
        await ends_in_time(
            api.schema.WriteSchema(schema_pb2.WriteSchemaRequest(schema=SCHEMA + "\n"))
        )


async def _write_into_the_hole(store: postgres.PostgresStore, hole: Blackhole) -> None:
    async with store.db.writing() as conn:
        await bump_head(conn, "acme")
        hole.blackhole()  # the COMMIT goes into the black hole


@pytest.mark.timeout(60)
async def test_a_write_cut_off_while_committing_says_it_may_have_been_applied(
    pg_dsn: str,
) -> None:
    async with Blackhole("127.0.0.1", 5432) as hole:
        dsn = pg_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{hole.port}")
        store = await postgres.connect(dsn, min_size=1, max_size=1)
        try:
            with (
                deadline.within(time.monotonic() + DEADLINE_MS / 1000),
                pytest.raises(Unavailable) as caught,
            ):
                await _write_into_the_hole(store, hole)
        finally:
            store.db.pool.terminate()
    assert "may have been applied" in str(caught.value)
    assert "idempotency key" in str(caught.value)


async def test_a_catch_up_caught_in_the_black_hole_ends_and_the_tenant_recovers(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relationship index's catch-up (readers at a revision it has not applied yet
    share it) ran with no deadline: a read of it lost in the black hole never ended,
    every later reader of the tenant waited for it, and the tenant answered
    DEADLINE_EXCEEDED long after the database was back (5.5 minutes, until its
    connections were killed). Each of its reads is now bounded."""
    monkeypatch.setattr(index_module, "_STORE_READ_S", 0.5, raising=False)
    async with Blackhole("127.0.0.1", 5432) as hole:
        dsn = pg_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{hole.port}")
        app = await start_app(server_settings(dsn, tmp_path, default_deadline_ms=DEADLINE_MS))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                api = Api(channel)
                await api.write_schema()
                await api.touch("acme", "document:plan#viewer@user:alice")
                assert app.index is not None
                assert await app.index.wait_loaded("acme")
                token = await api.touch("acme", "document:plan#viewer@user:bob")
                hole.blackhole()
                await ends_in_time(
                    api.check("acme", "document:plan", "view", "user:bob", fresh=token)
                )
                hole.restore()
                async with asyncio.timeout(3 * HANG_GUARD_S):  # fails the test if never
                    while (reply := await _unless_late(api.check(*BOB, fresh=token))) is None:
                        pass
                assert reply.decision == ALLOWED
        finally:
            await app.stop(grace=1.0)


BOB = ("acme", "document:plan", "view", "user:bob")


async def _unless_late(call: Awaitable[permissions_pb2.CheckResponse]) -> Any:
    """The answer, or None if the call ended DEADLINE_EXCEEDED."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        return None
