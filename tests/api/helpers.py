"""Small request builders for API tests (text forms in, protobuf out)."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    permissions_pb2_grpc,
    relationships_pb2,
    relationships_pb2_grpc,
    schema_pb2,
    schema_pb2_grpc,
    tenants_pb2,
    tenants_pb2_grpc,
)
from authz_service.model import parse_object, parse_relationship, parse_subject

SCHEMA = """
definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}
definition document {
    relation folder: folder
    relation viewer: user | user:* | group#member
    relation banned: user
    permission view = (viewer + folder->view) - banned
}
"""

ALLOWED = core_pb2.DECISION_ALLOWED
DENIED = core_pb2.DECISION_DENIED
CONDITIONAL = core_pb2.DECISION_CONDITIONAL


def obj(text: str) -> core_pb2.ObjectReference:
    ref = parse_object(text)
    return core_pb2.ObjectReference(object_type=ref.type, object_id=ref.id)


def subj(text: str) -> core_pb2.SubjectReference:
    ref = parse_subject(text)
    return core_pb2.SubjectReference(
        object=core_pb2.ObjectReference(object_type=ref.type, object_id=ref.id),
        relation=ref.relation,
    )


def rel(text: str) -> core_pb2.Relationship:
    parsed = parse_relationship(text)
    msg = core_pb2.Relationship(
        resource=obj(str(parsed.resource)),
        relation=parsed.relation,
        subject=subj(str(parsed.subject)),
    )
    if parsed.caveat is not None:
        msg.caveat.name = parsed.caveat.name
        if parsed.caveat.context:
            msg.caveat.context.update(parsed.caveat.context.to_dict())
    if parsed.expires_at is not None:
        msg.expires_at.FromDatetime(parsed.expires_at)
    return msg


class Api:
    """Stubs over one channel with text-form helpers."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.permissions = permissions_pb2_grpc.PermissionsServiceStub(channel)
        self.relationships = relationships_pb2_grpc.RelationshipsServiceStub(channel)
        self.schema = schema_pb2_grpc.SchemaServiceStub(channel)
        self.tenants = tenants_pb2_grpc.TenantServiceStub(channel)

    async def create_tenants(self, *names: str) -> None:
        """Register tenants (data calls to an unknown tenant are NOT_FOUND)."""
        for name in names:
            await self.tenants.CreateTenant(tenants_pb2.CreateTenantRequest(name=name))

    async def write_schema(self, text: str = SCHEMA, force: bool = False) -> str:
        reply = await self.schema.WriteSchema(
            schema_pb2.WriteSchemaRequest(schema=text, force=force)
        )
        return reply.schema_version

    async def touch(self, tenant: str, *texts: str) -> str:
        return await self._write(
            tenant, relationships_pb2.RelationshipUpdate.OPERATION_TOUCH, texts
        )

    async def delete(self, tenant: str, *texts: str) -> str:
        return await self._write(
            tenant, relationships_pb2.RelationshipUpdate.OPERATION_DELETE, texts
        )

    async def _write(self, tenant: str, op: Any, texts: tuple[str, ...]) -> str:
        reply = await self.relationships.WriteRelationships(
            relationships_pb2.WriteRelationshipsRequest(
                tenant=tenant,
                updates=[
                    relationships_pb2.RelationshipUpdate(operation=op, relationship=rel(t))
                    for t in texts
                ],
            )
        )
        return reply.written_at.token

    async def check(
        self,
        tenant: str,
        resource: str,
        permission: str,
        subject: str,
        *,
        fresh: str | None = None,
        exact: str | None = None,
        full: bool = False,
        context: dict[str, Any] | None = None,
    ) -> permissions_pb2.CheckResponse:
        consistency = core_pb2.Consistency()
        if fresh is not None:
            consistency.at_least_as_fresh.token = fresh
        elif exact is not None:
            consistency.at_exact_snapshot.token = exact
        elif full:
            consistency.fully_consistent = True
        request = permissions_pb2.CheckRequest(
            tenant=tenant,
            resource=obj(resource),
            permission=permission,
            subject=subj(subject),
            consistency=consistency,
        )
        if context:
            request.context.update(context)
        return await self.permissions.Check(request)

    async def explain(
        self,
        tenant: str,
        resource: str,
        permission: str,
        subject: str,
        *,
        context: dict[str, Any] | None = None,
    ) -> permissions_pb2.ExplainResponse:
        """Explain at the newest revision (fully consistent)."""
        request = permissions_pb2.ExplainRequest(
            tenant=tenant,
            resource=obj(resource),
            permission=permission,
            subject=subj(subject),
            consistency=core_pb2.Consistency(fully_consistent=True),
        )
        if context:
            request.context.update(context)
        return await self.permissions.Explain(request)


def bad_request_fields(err: grpc.aio.AioRpcError) -> list[str]:
    """The `field` of every google.rpc.BadRequest violation an error carries."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)  # type: ignore[arg-type]
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(bad):
                    return [v.field for v in bad.field_violations]
    return []
