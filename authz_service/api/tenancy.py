"""TenancyService: custom roles, role bindings, the reach of a grant, subject lifecycle.

Thin: convert the request (validating and naming fields), call the tenancy or lifecycle
service, convert the answer. Every write answers with a consistency token of the tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc

from authz_service.api import convert
from authz_service.api.calls import bind_deadline, call_info, unary_rpc
from authz_service.api.cursors import CursorScope
from authz_service.api.gen.authz.v1 import core_pb2, tenancy_pb2, tenancy_pb2_grpc
from authz_service.api.scim_sync import drift_to_proto, status_to_proto
from authz_service.errors import FailedPrecondition, InvalidArgument
from authz_service.model import ObjectRef, Revision
from authz_service.service import methods
from authz_service.service.lifecycle import LifecycleService
from authz_service.service.reconcile import Reconciler
from authz_service.service.tenancy import RoleView, TenancyService
from authz_service.tenancy import Binding, SubjectStatus

__all__ = ["TenancyServicer", "binding_to_proto"]

Ctx = grpc.aio.ServicerContext[Any, Any]
_PB = tenancy_pb2

_STATUSES = {
    SubjectStatus.ACTIVE: _PB.SUBJECT_STATUS_ACTIVE,
    SubjectStatus.SUSPENDED: _PB.SUBJECT_STATUS_SUSPENDED,
    SubjectStatus.DEPROVISIONED: _PB.SUBJECT_STATUS_DEPROVISIONED,
}


def _time(value: datetime | None, msg: Any) -> None:
    if value is not None:
        msg.FromDatetime(value.astimezone(UTC))


def role_to_proto(role: RoleView) -> tenancy_pb2.Role:
    msg = _PB.Role(
        name=role.name,
        description=role.description,
        permissions=[
            _PB.RolePermission(resource_type=t, permission=p) for t, p in role.permissions
        ],
        built_in=role.built_in,
    )
    _time(role.update_time, msg.update_time)
    return msg


def binding_to_proto(binding: Binding) -> core_pb2.RoleBinding:
    msg = core_pb2.RoleBinding(
        binding_id=binding.binding_id,
        role=binding.role,
        subject=convert.subject_to_proto(binding.subject),
    )
    if binding.scope is not None:
        msg.resource.CopyFrom(convert.object_to_proto(binding.scope))
    _time(binding.create_time, msg.create_time)
    return msg


def _permissions(role: tenancy_pb2.Role) -> list[tuple[str, str]]:
    found = []
    for i, item in enumerate(role.permissions):
        if not item.resource_type or not item.permission:
            raise InvalidArgument(
                "a role permission needs `resource_type` and `permission`",
                field=f"role.permissions[{i}]",
                value=f"{item.resource_type}.{item.permission}",
            )
        found.append((item.resource_type, item.permission))
    return found


def _binding(msg: core_pb2.RoleBinding, field: str = "binding") -> Binding:
    if not msg.role:
        raise InvalidArgument("a binding needs a role", field=f"{field}.role")
    if not msg.HasField("subject"):
        raise InvalidArgument("a binding needs a subject", field=f"{field}.subject")
    scope = None
    if msg.HasField("resource"):
        scope = convert.object_ref(msg.resource, f"{field}.resource")
    return Binding("", msg.role, convert.subject_ref(msg.subject, f"{field}.subject"), scope)


def _subject(msg: core_pb2.ObjectReference) -> ObjectRef:
    return convert.object_ref(msg, "subject")


def _next(scope: CursorScope, revision: Revision, after: str | None) -> core_pb2.Cursor | None:
    return None if after is None else scope.issue(revision, after)


class TenancyServicer(tenancy_pb2_grpc.TenancyServiceServicer):
    def __init__(
        self,
        tenancy: TenancyService,
        lifecycle: LifecycleService,
        *,
        default_deadline_s: float,
        reconciler: Reconciler | None = None,
    ) -> None:
        self._tenancy = tenancy
        self._lifecycle = lifecycle
        self._reconciler = reconciler
        self._deadline = default_deadline_s

    # --- roles ----------------------------------------------------------------------------

    @unary_rpc
    async def CreateRole(
        self, request: tenancy_pb2.CreateRoleRequest, context: Ctx
    ) -> tenancy_pb2.CreateRoleResponse:
        tenant = convert.tenant(request.tenant)
        role, revision = await self._tenancy.create_role(
            tenant,
            request.role.name,
            request.role.description,
            _permissions(request.role),
            call_info(context, self._deadline),
        )
        return _PB.CreateRoleResponse(
            role=role_to_proto(role), written_at=convert.token(tenant, revision)
        )

    @unary_rpc
    async def UpdateRole(
        self, request: tenancy_pb2.UpdateRoleRequest, context: Ctx
    ) -> tenancy_pb2.UpdateRoleResponse:
        tenant = convert.tenant(request.tenant)
        role, revision = await self._tenancy.update_role(
            tenant,
            request.role.name,
            request.role.description,
            _permissions(request.role),
            call_info(context, self._deadline),
        )
        return _PB.UpdateRoleResponse(
            role=role_to_proto(role), written_at=convert.token(tenant, revision)
        )

    @unary_rpc
    async def DeleteRole(
        self, request: tenancy_pb2.DeleteRoleRequest, context: Ctx
    ) -> tenancy_pb2.DeleteRoleResponse:
        tenant = convert.tenant(request.tenant)
        revision, count = await self._tenancy.delete_role(
            tenant, request.name, request.cascade, call_info(context, self._deadline)
        )
        return _PB.DeleteRoleResponse(
            written_at=convert.token(tenant, revision), deleted_binding_count=count
        )

    @unary_rpc
    async def ListRoles(
        self, request: tenancy_pb2.ListRolesRequest, context: Ctx
    ) -> tenancy_pb2.ListRolesResponse:
        bind_deadline(context, self._deadline)
        tenant = convert.tenant(request.tenant)
        scope = CursorScope.of(methods.LIST_ROLES, tenant, request)
        start = scope.resume(request.cursor, request.consistency)
        page = await self._tenancy.list_roles(tenant, start.consistency, request.limit, start.after)
        return _PB.ListRolesResponse(
            roles=[role_to_proto(r) for r in page.items],
            next_cursor=_next(scope, page.revision, page.next_after),
            read_at=convert.token(tenant, page.revision),
        )

    # --- bindings -------------------------------------------------------------------------

    @unary_rpc
    async def CreateBinding(
        self, request: tenancy_pb2.CreateBindingRequest, context: Ctx
    ) -> tenancy_pb2.CreateBindingResponse:
        tenant = convert.tenant(request.tenant)
        spec = _binding(request.binding)
        binding, revision = await self._tenancy.create_binding(
            tenant, spec.role, spec.subject, spec.scope, call_info(context, self._deadline)
        )
        return _PB.CreateBindingResponse(
            binding=binding_to_proto(binding), written_at=convert.token(tenant, revision)
        )

    @unary_rpc
    async def DeleteBinding(
        self, request: tenancy_pb2.DeleteBindingRequest, context: Ctx
    ) -> tenancy_pb2.DeleteBindingResponse:
        tenant = convert.tenant(request.tenant)
        if not request.binding_id:
            raise InvalidArgument("binding_id is required", field="binding_id")
        revision = await self._tenancy.delete_binding(
            tenant, request.binding_id, call_info(context, self._deadline)
        )
        return _PB.DeleteBindingResponse(written_at=convert.token(tenant, revision))

    @unary_rpc
    async def ListBindings(
        self, request: tenancy_pb2.ListBindingsRequest, context: Ctx
    ) -> tenancy_pb2.ListBindingsResponse:
        bind_deadline(context, self._deadline)
        tenant = convert.tenant(request.tenant)
        scope = CursorScope.of(methods.LIST_BINDINGS, tenant, request)
        start = scope.resume(request.cursor, request.consistency)
        subject = None
        if request.HasField("subject"):
            subject = convert.subject_ref(request.subject, "subject")
        resource = None
        if request.HasField("resource"):
            resource = convert.object_ref(request.resource, "resource")
        page = await self._tenancy.list_bindings(
            tenant,
            subject=subject,
            role=request.role,
            resource=resource,
            consistency=start.consistency,
            limit=request.limit,
            after=start.after,
        )
        return _PB.ListBindingsResponse(
            bindings=[binding_to_proto(b) for b in page.items],
            next_cursor=_next(scope, page.revision, page.next_after),
            read_at=convert.token(tenant, page.revision),
        )

    @unary_rpc
    async def GrantReach(
        self, request: tenancy_pb2.GrantReachRequest, context: Ctx
    ) -> tenancy_pb2.GrantReachResponse:
        bind_deadline(context, self._deadline)
        tenant = convert.tenant(request.tenant)
        scope = CursorScope.of(methods.GRANT_REACH, tenant, request)
        start = scope.resume(request.cursor, request.consistency)
        which = request.WhichOneof("grant")
        grant: Any
        if which == "binding_id":
            grant = request.binding_id
        elif which == "binding":
            grant = _binding(request.binding)
        elif which == "relationship":
            grant = convert.relationship(request.relationship, "relationship")
        else:
            raise InvalidArgument(
                "set one of `binding_id`, `binding` or `relationship`", field="grant"
            )
        page = await self._tenancy.grant_reach(
            tenant, grant, start.consistency, request.limit, start.after
        )
        return _PB.GrantReachResponse(
            resource_count=page.resource_count,
            permission_count=page.permission_count,
            resources=[
                _PB.ReachedResource(
                    resource=convert.object_to_proto(obj), permissions=list(permissions)
                )
                for obj, permissions in page.resources
            ],
            next_cursor=_next(scope, page.revision, page.next_after),
            read_at=convert.token(tenant, page.revision),
        )

    # --- subject lifecycle ----------------------------------------------------------------

    @unary_rpc
    async def GetSubjectStatus(
        self, request: tenancy_pb2.GetSubjectStatusRequest, context: Ctx
    ) -> tenancy_pb2.GetSubjectStatusResponse:
        bind_deadline(context, self._deadline)
        tenant = convert.tenant(request.tenant)
        record, revision = await self._lifecycle.status(
            tenant, _subject(request.subject), convert.consistency(request.consistency, tenant)
        )
        response = _PB.GetSubjectStatusResponse(
            status=_STATUSES[record.status],
            reason=record.reason,
            read_at=convert.token(tenant, revision),
        )
        _time(record.update_time, response.update_time)
        return response

    @unary_rpc
    async def SuspendSubject(
        self, request: tenancy_pb2.SuspendSubjectRequest, context: Ctx
    ) -> tenancy_pb2.SuspendSubjectResponse:
        tenant = convert.tenant(request.tenant)
        revision, previous = await self._lifecycle.suspend(
            tenant,
            _subject(request.subject),
            convert.reason(request.reason),
            call_info(context, self._deadline),
        )
        return _PB.SuspendSubjectResponse(
            written_at=convert.token(tenant, revision), previous_status=_STATUSES[previous]
        )

    @unary_rpc
    async def ReactivateSubject(
        self, request: tenancy_pb2.ReactivateSubjectRequest, context: Ctx
    ) -> tenancy_pb2.ReactivateSubjectResponse:
        tenant = convert.tenant(request.tenant)
        revision, previous = await self._lifecycle.reactivate(
            tenant,
            _subject(request.subject),
            convert.reason(request.reason),
            call_info(context, self._deadline),
        )
        return _PB.ReactivateSubjectResponse(
            written_at=convert.token(tenant, revision), previous_status=_STATUSES[previous]
        )

    @unary_rpc
    async def DeprovisionSubject(
        self, request: tenancy_pb2.DeprovisionSubjectRequest, context: Ctx
    ) -> tenancy_pb2.DeprovisionSubjectResponse:
        tenant = convert.tenant(request.tenant)
        done = await self._lifecycle.deprovision(
            tenant,
            _subject(request.subject),
            convert.reason(request.reason),
            call_info(context, self._deadline),
        )
        return _PB.DeprovisionSubjectResponse(
            written_at=convert.token(tenant, done.revision),
            previous_status=_STATUSES[done.previous],
            removed_relationships=[convert.relationship_to_proto(r) for r in done.relationships],
            removed_bindings=[binding_to_proto(b) for b in done.bindings],
        )

    # --- SCIM reconciliation (docs/identity.md) ---------------------------------------------

    def _reconcile(self) -> Reconciler:
        if self._reconciler is None:
            raise FailedPrecondition("SCIM reconciliation is not configured on this server")
        return self._reconciler

    @unary_rpc
    async def GetScimSync(
        self, request: tenancy_pb2.GetScimSyncRequest, context: Ctx
    ) -> tenancy_pb2.GetScimSyncResponse:
        bind_deadline(context, self._deadline)
        tenant = convert.tenant(request.tenant)
        reconciler = self._reconcile()
        drift = await reconciler.drift(tenant)
        return _PB.GetScimSyncResponse(
            status=status_to_proto(await reconciler.status(tenant)),
            drift=drift_to_proto(drift),
            read_at=convert.token(tenant, drift.revision),
        )

    @unary_rpc
    async def RepairScimDrift(
        self, request: tenancy_pb2.RepairScimDriftRequest, context: Ctx
    ) -> tenancy_pb2.RepairScimDriftResponse:
        tenant = convert.tenant(request.tenant)
        repaired, revision = await self._reconcile().repair(
            tenant, convert.reason(request.reason), call_info(context, self._deadline)
        )
        return _PB.RepairScimDriftResponse(
            repaired=drift_to_proto(repaired), written_at=convert.token(tenant, revision)
        )
