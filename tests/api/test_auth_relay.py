"""The console's relayed client address (api/relay.py): the failure backoff counts a
console call against the browser's address the call carries, but only when it proves it
came from this process's console; otherwise against the connection's peer, as any call.

The server here is the interceptor alone, over a Unix socket like the console's, on a
limiter whose clock stands still (a backoff never ends on its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.api.auth import Authenticator, AuthInterceptor
from authz_service.api.gen.authz.v1 import schema_pb2, schema_pb2_grpc
from authz_service.api.limits import FailureLimiter
from authz_service.api.relay import new_secret, relay_metadata
from authz_service.credentials import Scope, new_key
from authz_service.store.memory_keys import MemoryKeyStore

THRESHOLD = 3
Metadata = tuple[tuple[str, str], ...]


class _Schema(schema_pb2_grpc.SchemaServiceServicer):
    async def ReadSchema(self, request: Any, context: Any) -> schema_pb2.ReadSchemaResponse:
        return schema_pb2.ReadSchemaResponse()


class Relayed:
    """A server whose AuthInterceptor knows `secret`, a good key, and a way to call it."""

    def __init__(self, stub: Any, secret: str, good: str, wrong: str) -> None:
        self.stub, self.secret, self.good, self.wrong = stub, secret, good, wrong

    async def call(self, key: str, relayed: Metadata = ()) -> grpc.StatusCode:
        metadata = (("authorization", f"Bearer {key}"), *relayed)
        try:
            await self.stub.ReadSchema(schema_pb2.ReadSchemaRequest(), metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


@pytest.fixture
async def relayed(tmp_path: Path) -> AsyncIterator[Relayed]:
    keys = MemoryKeyStore()
    record, good = new_key(tenant="*", scopes=[Scope.CHECK])
    await keys.create(record)
    limiter = FailureLimiter(threshold=THRESHOLD, clock=lambda: 0.0)
    secret = new_secret()
    interceptor = AuthInterceptor(Authenticator(keys, limiter=limiter), relay=secret)
    server = grpc.aio.server(interceptors=[interceptor])
    schema_pb2_grpc.add_SchemaServiceServicer_to_server(_Schema(), server)
    target = f"unix:{tmp_path}/grpc.sock"
    assert server.add_insecure_port(target) != 0
    await server.start()
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = schema_pb2_grpc.SchemaServiceStub(channel)
            yield Relayed(stub, secret, good, f"azk_{record.key_id}_" + "A" * 43)
    finally:
        await server.stop(None)


async def test_a_relayed_address_with_the_proof_is_the_peer_counted(relayed: Relayed) -> None:
    here = relay_metadata("ipv4:10.0.0.1:5001", relayed.secret)
    for _ in range(THRESHOLD):
        assert await relayed.call(relayed.wrong, here) == grpc.StatusCode.UNAUTHENTICATED
    # 10.0.0.1 is held off, over a new connection (another port) too ...
    again = relay_metadata("ipv4:10.0.0.1:6002", relayed.secret)
    assert await relayed.call(relayed.good, again) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # ... while another browser behind the same console, and the socket itself, are not.
    there = relay_metadata("ipv4:10.0.0.2:5001", relayed.secret)
    assert await relayed.call(relayed.good, there) == grpc.StatusCode.OK
    assert await relayed.call(relayed.good) == grpc.StatusCode.OK


@pytest.mark.parametrize("proof", ["", "not the secret", None])
async def test_without_the_proof_the_connections_peer_is_counted(
    relayed: Relayed, proof: str | None
) -> None:
    """Any client may send the header: without this process's secret it names nothing,
    and a `unix:` peer proves nothing either."""
    claimed: Metadata = (("authz-console-peer", "ipv4:10.0.0.3:5001"),)
    if proof is not None:
        claimed += (("authz-console-proof", proof),)
    for _ in range(THRESHOLD):
        assert await relayed.call(relayed.wrong, claimed) == grpc.StatusCode.UNAUTHENTICATED
    assert await relayed.call(relayed.good) == grpc.StatusCode.RESOURCE_EXHAUSTED
    named = relay_metadata("ipv4:10.0.0.3:5001", relayed.secret)
    assert await relayed.call(relayed.good, named) == grpc.StatusCode.OK


async def test_a_relay_given_twice_is_not_believed(relayed: Relayed) -> None:
    """One address per call: two would leave the choice to whoever added the second."""
    twice = (
        *relay_metadata("ipv4:10.0.0.4:5001", relayed.secret),
        ("authz-console-peer", "ipv4:10.0.0.5:5001"),
    )
    for _ in range(THRESHOLD):
        assert await relayed.call(relayed.wrong, twice) == grpc.StatusCode.UNAUTHENTICATED
    assert await relayed.call(relayed.good) == grpc.StatusCode.RESOURCE_EXHAUSTED
