"""A deleted tenant's decisions never answer for it once another process of the service
has heard of the deletion (docs/tenancy.md, "Tenant lifecycle"): not for the deleted
tenant, not for a tenant created again under its name. Two servers on one database
stand for two workers. The one that did not serve the delete kept its minimize_latency
revision of the old tenant for the rest of its window and answered ALLOWED from the
decisions cached under it, also for an old token's at_least_as_fresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import tenants_pb2
from authz_service.app import App
from authz_service.store.postgres import PostgresStore
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, DENIED, Api

# A long window, so that the revision the second server pins cannot age out by itself
# while the test runs: only hearing of the deletion may end it.
WINDOW_MS = 60_000


@asynccontextmanager
async def _servers(pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[App, Api, App, Api]]:
    apps: list[App] = []
    try:
        for name in ("a", "b"):
            settings = server_settings(
                pg_dsn, tmp_path / name, max_staleness_ms=WINDOW_MS, revision_poll_ms=100
            )
            apps.append(await start_app(settings, tenants=("acme",)))
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{apps[0].port}") as one,
            grpc.aio.insecure_channel(f"127.0.0.1:{apps[1].port}") as two,
        ):
            yield apps[0], Api(one), apps[1], Api(two)
    finally:
        for app in apps:
            await app.stop(grace=1.0)


async def _stored_head(app: App) -> int:
    store = app.store
    assert isinstance(store, PostgresStore)
    return int(await store.db.fetchval("SELECT head FROM tenants WHERE tenant = 'acme'"))


async def _heard(app: App, head: int) -> None:
    """Wait until `app`'s revision tracker has heard of `head` of acme."""
    assert app.tracker is not None
    try:
        async with asyncio.timeout(10):
            while (known := app.tracker.known_head("acme")) is None or known[0] < head:  # noqa: ASYNC110 - polls the tracker's state
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"the server never heard of acme's head {head}") from None


@pytest.mark.timeout(120)
async def test_a_tenant_created_again_is_never_answered_from_the_old_ones_decisions(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with _servers(pg_dsn, tmp_path) as (app_a, api_a, app_b, api_b):
        await api_a.write_schema()
        old = await api_a.touch("acme", "document:readme#viewer@user:alice")
        await _heard(app_b, await _stored_head(app_a))
        for _ in range(2):  # the second answer comes from B's cache, at B's pinned revision
            reply = await api_b.check("acme", "document:readme", "view", "user:alice")
            assert reply.decision == ALLOWED

        await api_a.tenants.DeleteTenant(tenants_pb2.DeleteTenantRequest(name="acme", reason="t"))
        await _heard(app_b, await _stored_head(app_a))
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await api_b.check("acme", "document:readme", "view", "user:alice")
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND

        await api_a.create_tenants("acme")
        new = await api_a.touch("acme", "document:other#viewer@user:bob")
        await _heard(app_b, await _stored_head(app_a))
        for fresh in (None, old, new):
            reply = await api_b.check("acme", "document:readme", "view", "user:alice", fresh=fresh)
            assert reply.decision == DENIED, fresh
