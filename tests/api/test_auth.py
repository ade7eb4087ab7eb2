"""API keys over gRPC: authentication, scopes and tenant binding on every registered RPC.

The RPCs are enumerated from the running server (reflection, then the descriptors), so a
newly registered service or method is covered without touching this file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from authz_service.api.auth import ANY_KEY, EXEMPT_SERVICES, METHOD_SCOPES, Authenticator
from authz_service.api.gen.authz.v1 import core_pb2, relationships_pb2
from authz_service.app import App
from authz_service.credentials import ApiKey, Scope, new_key
from authz_service.decisionlog import DecisionKind, RecordFilter, iter_entries
from authz_service.errors import Unauthenticated
from authz_service.store.memory_keys import MemoryKeyStore
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, Api

ALL_SCOPES = frozenset(Scope)
TTL_S = 0.5
# Not protected by a key, and with their own services' semantics: no tenant binding.
UNBOUND = {"grpc.health.v1.Health", *EXEMPT_SERVICES}


@dataclass
class Server:
    app: App
    channel: grpc.aio.Channel

    async def key(
        self, tenant: str, scopes: frozenset[Scope] = ALL_SCOPES, name: str = ""
    ) -> tuple[ApiKey, str]:
        record, token = new_key(tenant=tenant, scopes=scopes, name=name)
        return await self.app.store.keys.create(record), token


@pytest.fixture
async def server(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Server]:
    settings = server_settings(
        pg_dsn, tmp_path, auth=True, auth_cache_ttl_s=TTL_S, log_mode="buffered"
    )
    app = await start_app(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Server(app, channel)
    finally:
        await app.stop(grace=1.0)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class KeyedApi(Api):
    """The test helpers' stubs, with one key on every call."""

    def __init__(self, channel: grpc.aio.Channel, token: str) -> None:
        super().__init__(_KeyedChannel(channel, bearer(token)))  # type: ignore[arg-type]


class _KeyedChannel:
    """Adds metadata to every call made through the stubs built on it."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]):
        self._channel = channel
        self._metadata = metadata

    def __getattr__(self, kind: str) -> Callable[..., Any]:
        factory = getattr(self._channel, kind)

        def make(*args: Any, **kwargs: Any) -> Callable[..., Any]:
            multicallable = factory(*args, **kwargs)

            def call(request: Any, **options: Any) -> Any:
                options.setdefault("metadata", self._metadata)
                return multicallable(request, **options)

            return call

        return make


# --- enumerating what the server serves ---------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    service: str
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def has_tenant(self) -> bool:
        return "tenant" in self.method.input_type.fields_by_name

    def request(self, tenant: str) -> Message:
        message: Message = message_factory.GetMessageClass(self.method.input_type)()
        if self.has_tenant:
            message.tenant = tenant  # type: ignore[attr-defined]
        return message


async def served_rpcs(channel: grpc.aio.Channel) -> list[Rpc]:
    """Every method of every service the server registers (reflection needs no key)."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = []
    async for reply in call:
        names = [s.name for s in reply.list_services_response.service]
        break
    call.cancel()
    pool = descriptor_pool.Default()
    rpcs = []
    for name in sorted(set(names) - UNBOUND):
        service = pool.FindServiceByName(name)
        rpcs.extend(Rpc(name, method) for method in service.methods)
    return rpcs


async def outcome(
    channel: grpc.aio.Channel, rpc: Rpc, request: Message, metadata: Any = None, wait: float = 5
) -> grpc.StatusCode:
    """The status of one call (OK if it succeeded or a stream produced a first message)."""
    output = message_factory.GetMessageClass(rpc.method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": output.FromString,
    }
    assert not rpc.method.client_streaming, f"{rpc.path}: client streams are not expected"
    try:
        if rpc.method.server_streaming:
            stream = channel.unary_stream(rpc.path, **kwargs)(
                request, metadata=metadata, timeout=wait
            )
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(rpc.path, **kwargs)(request, metadata=metadata, timeout=wait)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def until(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    """Poll `check` until it holds; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


# --- authentication -----------------------------------------------------------------------


async def test_health_and_reflection_need_no_key(server: Server) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert await served_rpcs(server.channel)  # reflection answered without a key


async def test_every_rpc_without_a_key_is_unauthenticated(server: Server) -> None:
    rpcs = await served_rpcs(server.channel)
    codes = {rpc.path: await outcome(server.channel, rpc, rpc.request("acme")) for rpc in rpcs}
    assert set(codes.values()) == {grpc.StatusCode.UNAUTHENTICATED}, codes


@pytest.mark.parametrize(
    "authorization",
    [
        "azk_abcdefghijkm_" + "A" * 43,  # no scheme
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "Bearer not-a-key",
        "Bearer azk_short_" + "A" * 43,
        "Bearer azk_abcdefghijkm_" + "A" * 43,  # well formed, unknown id
    ],
)
async def test_malformed_and_unknown_keys_are_unauthenticated(
    server: Server, authorization: str
) -> None:
    rpc = next(r for r in await served_rpcs(server.channel) if r.method.name == "Check")
    metadata = (("authorization", authorization),)
    assert await outcome(server.channel, rpc, rpc.request("acme"), metadata) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_a_wrong_secret_for_a_real_key_id_is_unauthenticated(server: Server) -> None:
    _, token = await server.key("acme")
    forged = token[: -len("AAAA")] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await KeyedApi(server.channel, forged).check("acme", "document:x", "view", "user:a")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_revoked_key_is_refused_once_the_cache_expires(server: Server) -> None:
    admin, admin_token = await server.key("*")
    key, token = await server.key("acme", frozenset({Scope.CHECK}))
    await KeyedApi(server.channel, admin_token).write_schema()
    api = KeyedApi(server.channel, token)
    await api.check("acme", "document:x", "view", "user:a")  # works, and is now cached

    await server.app.store.keys.revoke(key.key_id)

    seen = []

    async def refused() -> bool:
        try:
            await api.check("acme", "document:x", "view", "user:a")
            seen.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as err:
            seen.append(err.code())
        return seen[-1] is not grpc.StatusCode.OK

    await until(refused, within=TTL_S + 10)
    assert seen[-1] == grpc.StatusCode.UNAUTHENTICATED
    # The platform key is untouched by another key's revocation.
    await KeyedApi(server.channel, admin_token).check("acme", "document:x", "view", "user:a")
    assert admin.key_id != key.key_id


async def test_an_open_watch_ends_unauthenticated_once_its_key_is_revoked(server: Server) -> None:
    _, admin_token = await server.key("*")
    key, token = await server.key("acme", frozenset({Scope.WRITE}))
    admin = KeyedApi(server.channel, admin_token)
    await admin.write_schema()
    start = await admin.touch("acme", "document:one#viewer@user:ann")
    await admin.touch("acme", "document:two#viewer@user:ann")
    api = KeyedApi(server.channel, token)
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after=core_pb2.ConsistencyToken(token=start))
    )
    async with asyncio.timeout(10):
        first = await watch.read()  # the key works: the stream is open
    assert [c.relationship.resource.object_id for c in first.changes] == ["two"]

    await server.app.store.keys.revoke(key.key_id)  # what `authz keys revoke` does
    # The stream is idle (no writes), yet it must end within the bound (the TTL).
    async with asyncio.timeout(TTL_S + 10):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await watch.read()
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (err.value.details() or "")


# --- tenant binding and scopes -------------------------------------------------------------


async def test_every_registered_rpc_has_an_entry_in_the_scope_table(server: Server) -> None:
    rpcs = await served_rpcs(server.channel)
    missing = [rpc.path for rpc in rpcs if rpc.path not in METHOD_SCOPES]
    assert not missing, f"add these methods to METHOD_SCOPES in api/auth.py: {missing}"
    streams = {rpc.method.name for rpc in rpcs if rpc.method.server_streaming}
    assert {"LookupResources", "LookupSubjects", "ReadRelationships", "Watch"} <= streams


async def test_a_globex_key_is_denied_every_rpc_in_acme(server: Server) -> None:
    _, token = await server.key("globex", ALL_SCOPES)
    rpcs = await served_rpcs(server.channel)
    codes = {
        rpc.path: await outcome(server.channel, rpc, rpc.request("acme"), bearer(token))
        for rpc in rpcs
        if rpc.has_tenant or METHOD_SCOPES.get(rpc.path) != ANY_KEY
    }
    assert set(codes.values()) == {grpc.StatusCode.PERMISSION_DENIED}, codes
    # Control: the same calls in its own tenant get past authorization (the empty
    # requests may still be invalid, and a Watch may simply wait for changes).
    own = {
        rpc.path: await outcome(server.channel, rpc, rpc.request("globex"), bearer(token), 1.0)
        for rpc in rpcs
        if rpc.has_tenant
    }
    refused = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}
    assert not {path: code for path, code in own.items() if code in refused}


async def test_a_check_key_cannot_write_or_administer(server: Server) -> None:
    _, admin_token = await server.key("*", frozenset({Scope.ADMIN, Scope.WRITE}))
    admin = KeyedApi(server.channel, admin_token)
    await admin.write_schema()
    await admin.touch("acme", "document:plan#viewer@user:alice")
    _, token = await server.key("acme", frozenset({Scope.CHECK}))
    checker = KeyedApi(server.channel, token)
    assert (await checker.check("acme", "document:plan", "view", "user:alice")).decision == ALLOWED
    for call in (
        lambda: checker.touch("acme", "document:plan#viewer@user:mallory"),
        lambda: checker.delete("acme", "document:plan#viewer@user:alice"),
        checker.write_schema,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await checker.check("acme", "document:plan", "view", "user:alice")).decision == ALLOWED


async def test_a_tenant_key_with_admin_scope_cannot_write_the_shared_schema(
    server: Server,
) -> None:
    _, token = await server.key("acme", ALL_SCOPES)
    api = KeyedApi(server.channel, token)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.write_schema()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    _, admin_token = await server.key("*", frozenset({Scope.ADMIN}))
    version = await KeyedApi(server.channel, admin_token).write_schema()
    # Reading the schema is open to any valid key, whatever its scopes and tenant.
    from authz_service.api.gen.authz.v1 import schema_pb2

    reply = await api.schema.ReadSchema(schema_pb2.ReadSchemaRequest())
    assert reply.schema_version == version


async def test_a_platform_key_works_for_any_tenant(server: Server) -> None:
    _, token = await server.key("*", frozenset({Scope.ADMIN, Scope.WRITE, Scope.CHECK}))
    api = KeyedApi(server.channel, token)
    await api.write_schema()
    await api.create_tenants("initech")  # a platform admin key may create tenants
    for tenant in ("acme", "globex", "initech"):
        written = await api.touch(tenant, "document:plan#viewer@user:alice")
        reply = await api.check(tenant, "document:plan", "view", "user:alice", fresh=written)
        assert reply.decision == ALLOWED


async def test_with_keys_the_tenant_gate_runs_after_the_key_checks_on_the_parsed_body(
    server: Server,
) -> None:
    # The auth interceptor parses the body and runs the tenant gate itself: a bad body
    # is INVALID_ARGUMENT, a key not bound to the tenant learns nothing of it, a key bound
    # to a tenant that does not exist gets NOT_FOUND, and once it exists, an answer.
    _, admin_token = await server.key("*", frozenset({Scope.ADMIN, Scope.WRITE}))
    admin = KeyedApi(server.channel, admin_token)
    await admin.write_schema()
    _, bound = await server.key("nowhere", ALL_SCOPES)
    _, other = await server.key("acme", ALL_SCOPES)
    raw = server.channel.unary_unary("/authz.v1.PermissionsService/Check")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(b"\xff\xff\xff", metadata=bearer(bound))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "CheckRequest" in (err.value.details() or "")
    expected = {
        other: grpc.StatusCode.PERMISSION_DENIED,
        bound: grpc.StatusCode.NOT_FOUND,
    }
    for token, code in expected.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await KeyedApi(server.channel, token).check("nowhere", "document:x", "view", "user:a")
        assert err.value.code() == code
    await admin.create_tenants("nowhere")
    written = await admin.touch("nowhere", "document:x#viewer@user:a")
    reply = await KeyedApi(server.channel, bound).check(
        "nowhere", "document:x", "view", "user:a", fresh=written
    )
    assert reply.decision == ALLOWED


# --- the decision log names the credential --------------------------------------------------


async def test_decision_log_records_carry_the_credential_id(pg_dsn: str, tmp_path: Path) -> None:
    settings = server_settings(pg_dsn, tmp_path, auth=True, log_mode="buffered")
    app = await start_app(settings)
    try:
        admin, admin_token = await _create(app, "*", frozenset({Scope.ADMIN, Scope.WRITE}))
        checker, token = await _create(app, "acme", frozenset({Scope.CHECK}))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await KeyedApi(channel, admin_token).write_schema()
            written = await KeyedApi(channel, admin_token).touch("acme", "document:p#viewer@user:a")
            reply = await KeyedApi(channel, token).check(
                "acme", "document:p", "view", "user:a", fresh=written
            )
    finally:
        await app.stop(grace=1.0)  # flushes the log
    entries = list(iter_entries(settings.log_dir, RecordFilter(decision_id=reply.decision_id)))
    assert [e.entry.record.credential_id for e in entries] == [checker.key_id]
    admin_records = list(iter_entries(settings.log_dir, RecordFilter(kind=DecisionKind.ADMIN)))
    assert admin_records
    assert {e.entry.record.credential_id for e in admin_records} == {admin.key_id}


async def _create(app: App, tenant: str, scopes: frozenset[Scope]) -> tuple[ApiKey, str]:
    record, token = new_key(tenant=tenant, scopes=scopes)
    return await app.store.keys.create(record), token


# --- turning it off ----------------------------------------------------------------------


async def test_auth_off_warns_and_trusts_every_caller(
    pg_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="authz_service.app")
    app = await start_app(server_settings(pg_dsn, tmp_path, auth=False))
    try:
        assert "authentication is off" in caplog.text
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            await Api(channel).write_schema()
    finally:
        await app.stop(grace=1.0)


# --- the key cache, on a fake clock ----------------------------------------------------


class CountingKeys(MemoryKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        return await super().get(key_id)


async def test_verified_keys_are_cached_for_the_ttl_and_revocation_follows() -> None:
    keys, now = CountingKeys(), [100.0]
    auth = Authenticator(keys, ttl_s=5.0, clock=lambda: now[0])
    record, token = new_key(tenant="acme", scopes=[Scope.CHECK])
    await keys.create(record)
    for _ in range(3):
        assert (await auth.authenticate(f"Bearer {token}")).key_id == record.key_id
    assert keys.reads == 1  # the hot path stays off the store
    await keys.revoke(record.key_id)
    now[0] += 4.9
    await auth.authenticate(f"bearer {token}")  # still cached: at most ttl_s of grace
    now[0] += 0.2
    with pytest.raises(Unauthenticated, match="revoked"):
        await auth.authenticate(f"Bearer {token}")
    assert keys.reads == 2


async def test_a_fresh_verification_reads_the_store_and_sees_a_revocation_at_once() -> None:
    keys = CountingKeys()
    auth = Authenticator(keys, ttl_s=5.0, clock=lambda: 100.0)
    record, token = new_key(tenant="acme", scopes=[Scope.CHECK])
    await keys.create(record)
    await auth.authenticate(f"Bearer {token}")
    await keys.revoke(record.key_id)
    await auth.authenticate(f"Bearer {token}")  # cached
    with pytest.raises(Unauthenticated, match="revoked"):
        await auth.authenticate(f"Bearer {token}", fresh=True, recheck=True)  # open streams
    with pytest.raises(Unauthenticated, match="revoked"):
        await auth.authenticate(f"Bearer {token}")  # and the cache learned it
    assert keys.reads == 2
    assert (auth.recheck_s, Authenticator(keys, ttl_s=0).recheck_s) == (5.0, 1.0)


async def test_a_zero_ttl_reads_the_store_every_time() -> None:
    keys = CountingKeys()
    auth = Authenticator(keys, ttl_s=0)
    record, token = new_key(tenant="acme", scopes=[Scope.CHECK])
    await keys.create(record)
    for _ in range(3):
        await auth.authenticate(f"Bearer {token}")
    assert keys.reads == 3


async def test_the_cache_stays_bounded() -> None:
    keys = MemoryKeyStore()
    auth = Authenticator(keys, ttl_s=60, max_entries=3)
    tokens = []
    for _ in range(5):
        record, token = new_key(tenant="acme", scopes=[Scope.CHECK])
        await keys.create(record)
        tokens.append(token)
    for token in tokens:
        await auth.authenticate(f"Bearer {token}")
    assert len(auth._cache) <= 3
