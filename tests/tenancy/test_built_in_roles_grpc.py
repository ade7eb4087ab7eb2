"""A built-in role (declared in the schema) over gRPC: UpdateRole and DeleteRole refuse it
with FAILED_PRECONDITION saying it is built in, and write nothing; a name no role has is
NOT_FOUND (tenancy.proto)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import tenancy_pb2
from authz_service.app import App
from tests.api.helpers import Api
from tests.tenancy.helpers import SCHEMA, binding_msg, role_msg, tenancy_stub

T = "acme"
_PB = tenancy_pb2


async def _refused(app: App, call: Awaitable[Any], code: grpc.StatusCode) -> str:
    head = await app.store.head_revision(T)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is code, caught.value.details()
    assert await app.store.head_revision(T) == head
    return caught.value.details() or ""


async def test_a_built_in_role_cannot_be_updated_or_deleted(
    app: App, channel: grpc.aio.Channel
) -> None:
    await Api(channel).write_schema(SCHEMA)
    tenancy = tenancy_stub(channel)
    bound = await tenancy.CreateBinding(
        _PB.CreateBindingRequest(tenant=T, binding=binding_msg("auditor", "user:ann"))
    )
    built_in = grpc.StatusCode.FAILED_PRECONDITION
    for cascade in (False, True):
        details = await _refused(
            app,
            tenancy.DeleteRole(_PB.DeleteRoleRequest(tenant=T, name="auditor", cascade=cascade)),
            built_in,
        )
        assert "`auditor` is built in" in details
    details = await _refused(
        app,
        tenancy.UpdateRole(
            _PB.UpdateRoleRequest(tenant=T, role=role_msg("auditor", ["invoice.view"]))
        ),
        built_in,
    )
    assert "`auditor` is built in" in details
    roles = await tenancy.ListRoles(_PB.ListRolesRequest(tenant=T))
    assert [(r.name, r.built_in) for r in roles.roles] == [("auditor", True)]
    bindings = await tenancy.ListBindings(_PB.ListBindingsRequest(tenant=T, role="auditor"))
    assert [b.binding_id for b in bindings.bindings] == [bound.binding.binding_id]

    missing = grpc.StatusCode.NOT_FOUND
    await _refused(app, tenancy.DeleteRole(_PB.DeleteRoleRequest(tenant=T, name="nobody")), missing)
    await _refused(
        app,
        tenancy.UpdateRole(_PB.UpdateRoleRequest(tenant=T, role=role_msg("nobody", []))),
        missing,
    )
