"""Every data RPC naming a tenant that does not exist is NOT_FOUND naming it, and creates
nothing. The methods are enumerated from the service descriptors, so a new RPC with a
`tenant` field is covered without touching this file; one without is listed below."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory

from authz_service.api.gen.authz.v1 import tenants_pb2
from authz_service.api.server import SERVICE_NAMES
from authz_service.app import App
from tests.api.helpers import ALLOWED, Api

# The calls that are not tenant data: the shared schema and the registry itself.
NOT_TENANT_DATA = {
    "/authz.v1.SchemaService/WriteSchema",
    "/authz.v1.SchemaService/ReadSchema",
    *(f"/authz.v1.TenantService/{m}" for m in ("CreateTenant", "GetTenant", "ListTenants")),
    *(f"/authz.v1.TenantService/{m}" for m in ("SuspendTenant", "ReactivateTenant")),
    "/authz.v1.TenantService/DeleteTenant",
    "/authz.v1.TenantService/ExportTenant",
}
UNKNOWN = "nowhere"


def _methods() -> list[tuple[str, object, bool]]:
    pool = descriptor_pool.Default()
    found = []
    for service in SERVICE_NAMES:
        for method in pool.FindServiceByName(service).methods:
            found.append(
                (
                    f"/{service}/{method.name}",
                    message_factory.GetMessageClass(method.input_type),
                    method.server_streaming,
                )
            )
    return found


def test_every_method_without_a_tenant_field_is_known() -> None:
    without = {name for name, cls, _ in _methods() if "tenant" not in cls.DESCRIPTOR.fields_by_name}
    assert without == NOT_TENANT_DATA


async def test_every_data_rpc_to_an_unknown_tenant_is_not_found(
    app: App, channel: grpc.aio.Channel
) -> None:
    api = Api(channel)
    await api.write_schema()
    called = []
    for name, cls, streaming in _methods():
        if name in NOT_TENANT_DATA:
            continue
        request = cls(tenant=UNKNOWN)  # nothing else: the tenant is refused first
        if streaming:
            stub = channel.unary_stream(
                name, request_serializer=cls.SerializeToString, response_deserializer=bytes
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in stub(request):
                    pass
        else:
            unary = channel.unary_unary(
                name, request_serializer=cls.SerializeToString, response_deserializer=bytes
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await unary(request)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND, name
        assert f"tenant `{UNKNOWN}` does not exist" in (refused.value.details() or ""), name
        called.append(name)
    assert "/authz.v1.PermissionsService/Check" in called
    assert len(called) >= 25  # every tenant-data method of every service
    # Nothing was created on the way.
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await api.tenants.GetTenant(tenants_pb2.GetTenantRequest(name=UNKNOWN))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert await app.store.head_revision(UNKNOWN) == 0


async def test_a_tenant_created_is_usable_at_once(app: App, channel: grpc.aio.Channel) -> None:
    api = Api(channel)
    await api.write_schema()
    with pytest.raises(grpc.aio.AioRpcError) as before:
        await api.touch("newco", "document:readme#viewer@user:alice")
    assert before.value.code() == grpc.StatusCode.NOT_FOUND
    await api.create_tenants("newco")
    token = await api.touch("newco", "document:readme#viewer@user:alice")
    reply = await api.check("newco", "document:readme", "view", "user:alice", fresh=token)
    assert reply.decision == ALLOWED
