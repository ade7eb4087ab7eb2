"""Bad tenancy input over gRPC: a clear INVALID_ARGUMENT naming the field, and nothing
written (the tenant's revision does not move)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    relationships_pb2,
    tenancy_pb2,
)
from authz_service.app import App
from tests.api.helpers import Api, obj, subj
from tests.tenancy.helpers import SCHEMA, binding_msg, role_msg, tenancy_stub

T = "acme"


async def refused(app: App, call: Awaitable[Any], field: str) -> str:
    head = await app.store.head_revision(T)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    fields = []
    for detail in status.details:
        request = error_details_pb2.BadRequest()
        if detail.Unpack(request):
            fields += [v.field for v in request.field_violations]
    assert field in fields, (fields, error.details())
    assert await app.store.head_revision(T) == head
    return str(error.details())


async def test_bad_tenancy_input_writes_nothing(app: App, channel: grpc.aio.Channel) -> None:
    api, t = Api(channel), tenancy_stub(channel)
    await api.write_schema(SCHEMA)
    await api.touch(T, "invoice:i#folder@folder:f", "user:alice#support@user:sam")
    await t.CreateRole(
        tenancy_pb2.CreateRoleRequest(tenant=T, role=role_msg("member-of", ["group.member"]))
    )
    message = await refused(
        app,
        t.CreateRole(
            tenancy_pb2.CreateRoleRequest(
                tenant=T, role=role_msg("billing-admin", ["invoice.pay", "invoice.refund"])
            )
        ),
        "role.permissions[1]",
    )
    assert "`refund`" in message
    message = await refused(
        app,
        t.CreateBinding(
            tenancy_pb2.CreateBindingRequest(
                tenant=T, binding=binding_msg("billing-admin", "user:alice", "folder:f")
            )
        ),
        "binding.role",
    )
    assert "unknown role `billing-admin`" in message
    message = await refused(
        app,
        t.CreateBinding(
            tenancy_pb2.CreateBindingRequest(
                tenant=T, binding=binding_msg("member-of", "group:eng#member", "group:eng")
            )
        ),
        "binding",
    )
    assert "cycle" in message
    await refused(
        app,
        api.permissions.Check(
            permissions_pb2.CheckRequest(
                tenant=T,
                resource=obj("invoice:i"),
                permission="pay",
                subject=subj("user:alice"),
                actor=subj("user:sam"),
            )
        ),
        "reason",
    )
    await refused(
        app,
        api.permissions.CheckBulk(
            permissions_pb2.CheckBulkRequest(
                tenant=T,
                actor=subj("user:sam"),
                items=[
                    permissions_pb2.CheckBulkRequestItem(
                        resource=obj("invoice:i"), permission="pay", subject=subj("user:alice")
                    )
                ],
            )
        ),
        "reason",
    )
    # the internal types cannot be reached through the relationships API either
    await refused(
        app,
        api.relationships.WriteRelationships(_internal_write()),
        "updates[0].relationship.resource.object_type",
    )


def _internal_write() -> relationships_pb2.WriteRelationshipsRequest:
    return relationships_pb2.WriteRelationshipsRequest(
        tenant=T,
        updates=[
            relationships_pb2.RelationshipUpdate(
                operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
                relationship=core_pb2.Relationship(
                    resource=core_pb2.ObjectReference(object_type="__role", object_id="admin"),
                    relation="grants",
                    subject=subj("user:alice"),
                ),
            )
        ],
    )
