"""A real server on PostgreSQL with its SCIM listener on a loopback port, keys on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx2 as httpx
import pytest

from authz_service.app import App
from authz_service.credentials import Scope, new_key
from tests.api.conftest import pg_dsn, server_settings
from tests.api.helpers import Api
from tests.tenancy.helpers import KeyedChannel

__all__ = ["SCHEMA", "ScimServer", "pg_dsn", "scim"]

SCHEMA = """
definition user {}
definition group {
    relation member: user | group#member
}
definition document {
    relation viewer: user | group#member
    permission view = viewer
}
"""


@dataclass
class ScimServer:
    app: App
    channel: grpc.aio.Channel

    @property
    def base(self) -> str:
        assert self.app.scim is not None
        return f"http://127.0.0.1:{self.app.scim.port}/scim/v2"

    async def key(self, tenant: str, *scopes: Scope) -> str:
        record, token = new_key(tenant=tenant, scopes=frozenset(scopes or (Scope.SCIM,)))
        await self.app.store.keys.create(record)
        return token

    async def keyed(self, tenant: str = "acme") -> KeyedChannel:
        return KeyedChannel(self.channel, await self.key(tenant, *Scope))

    async def platform(self) -> Api:
        return Api(KeyedChannel(self.channel, await self.key("*", *Scope)))  # type: ignore[arg-type]

    async def api(self, tenant: str = "acme") -> Api:
        return Api(await self.keyed(tenant))  # type: ignore[arg-type]

    async def http(self, tenant: str = "acme") -> httpx.AsyncClient:
        token = await self.key(tenant)
        return httpx.AsyncClient(
            base_url=f"{self.base}/{tenant}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )


@pytest.fixture
async def scim(pg_dsn: str, tmp_path: Path) -> AsyncIterator[ScimServer]:
    settings = server_settings(
        pg_dsn, tmp_path, auth=True, log_mode="durable", scim_listen="127.0.0.1:0"
    )
    app = await App.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            server = ScimServer(app, channel)
            platform = await server.key("*", *Scope)
            platform_api = Api(KeyedChannel(channel, platform))  # type: ignore[arg-type]
            await platform_api.write_schema(SCHEMA)
            await platform_api.create_tenants("acme", "globex")
            yield server
    finally:
        await app.stop(grace=1.0)
