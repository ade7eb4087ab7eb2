"""The console's way to the service: the gRPC API itself, over a local channel.

Every action on tenant data is a gRPC call carrying the viewer's API key, through the
same interceptors as any client's call (authentication, scopes, tenant gate, limits,
deadlines) and into the same decision log. The console therefore cannot do anything the
key could not do with `authz check` or a client library: it is no bypass. Each call also
names the browser it is made for, so the server's failure backoff counts it against
that browser's address rather than against the socket every console user shares
(api/relay.py). The one thing done here rather than through a call, the playground's
in-memory world, is held to the same deadline by `playground` (console/budget.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from authz_service.api.gen.authz.v1 import (
    audit_pb2_grpc,
    permissions_pb2_grpc,
    relationships_pb2_grpc,
    schema_pb2_grpc,
    tenancy_pb2_grpc,
    tenants_pb2_grpc,
)
from authz_service.api.relay import relay_metadata
from authz_service.console.auth import Viewer
from authz_service.console.budget import Budget

__all__ = ["Backend", "call_error"]

# A console page waits at most this long for one call; the server's own deadlines and
# budgets apply within it.
CALL_TIMEOUT_S = 10.0


@dataclass
class Backend:
    channel: grpc.aio.Channel
    permissions: Any
    relationships: Any
    schema: Any
    tenancy: Any
    tenants: Any
    audit: Any
    playground: Budget
    relay: str | None  # the secret that proves a relayed address came from here

    @classmethod
    def connect(cls, target: str, *, deadline_s: float, relay: str | None) -> Backend:
        """Stubs on one channel to `target` (the server's local socket); `deadline_s`,
        the server's default deadline, bounds the playground's in-memory work; `relay`
        is the server's secret for the browser addresses the calls name."""
        channel = grpc.aio.insecure_channel(target)
        return cls(
            channel,
            permissions_pb2_grpc.PermissionsServiceStub(channel),
            relationships_pb2_grpc.RelationshipsServiceStub(channel),
            schema_pb2_grpc.SchemaServiceStub(channel),
            tenancy_pb2_grpc.TenancyServiceStub(channel),
            tenants_pb2_grpc.TenantServiceStub(channel),
            audit_pb2_grpc.AuditServiceStub(channel),
            Budget(deadline_s),
            relay,
        )

    def metadata(self, viewer: Viewer, client: str | None) -> tuple[tuple[str, str], ...]:
        """The metadata of a call made for `viewer` from the browser at `client` (as
        `http_peer` names it): the key, and the browser's address with its proof. Taken
        from each request, never kept with a session: its browser may move."""
        if self.relay is None or client is None:
            return viewer.metadata()
        return viewer.metadata() + relay_metadata(client, self.relay)

    async def close(self) -> None:
        await self.channel.close(None)


def call_error(exc: grpc.aio.AioRpcError) -> str:
    """What a failed call says, for the page: the status and the server's message (which
    names the field and value at fault; never internals)."""
    code = exc.code()
    name = code.name if code is not None else "UNKNOWN"
    return f"{name}: {exc.details() or ''}"
