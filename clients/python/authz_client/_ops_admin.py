"""Operations of the administration services (TenantService, KeysService, TenancyService)
for both clients; see `_ops` for what an operation is.

Retries: reads are retried on UNAVAILABLE; writes are not (none of these calls takes an
idempotency key, and a write that did commit before the connection dropped could be
applied twice or fail its second time with a misleading status).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.protobuf import duration_pb2

from authz_client import _results, text
from authz_client._ops import (
    Collect,
    Unary,
    contextual,
    cursor,
    optional_object,
    optional_subject,
    timestamp,
)
from authz_client._stubs import core_pb2, keys_pb2, tenancy_pb2, tenants_pb2
from authz_client.errors import error_for
from authz_client.types import WriteResult
from authz_client.types_admin import (
    ApiKey,
    BindingResult,
    DeleteRoleResult,
    DeprovisionResult,
    GrantReachResult,
    NewKey,
    Page,
    RoleBinding,
    RolePermission,
    RoleResult,
    ScimRepair,
    ScimSync,
    StatusChange,
    SubjectStatus,
    Tenant,
    TenantDeletion,
    TenantExport,
)
from authz_client.types_admin import Role as RoleValue

__all__ = [
    "PermissionSpec",
    "create_binding",
    "create_key",
    "create_tenant",
    "delete_binding",
    "delete_role",
    "delete_tenant",
    "deprovision_subject",
    "export_tenant",
    "get_scim_sync",
    "get_subject_status",
    "get_tenant",
    "grant_reach",
    "list_bindings",
    "list_keys",
    "list_roles",
    "list_tenants",
    "reactivate_subject",
    "reactivate_tenant",
    "repair_scim_drift",
    "revoke_key",
    "rotate_key",
    "save_role",
    "suspend_subject",
    "suspend_tenant",
]

# A role's permission: RolePermission("document", "view") or ("document", "view").
PermissionSpec = RolePermission | tuple[str, str]
Ref = str | core_pb2.ObjectReference
SubjectRef = str | core_pb2.SubjectReference


def _written(response: Any) -> str:
    token: str = response.written_at.token
    return token


# -- tenants ----------------------------------------------------------------------------


def create_tenant(name: str, reason: str) -> Unary[Tenant]:
    request = tenants_pb2.CreateTenantRequest(name=name, reason=reason)
    return Unary(
        "TenantService", "CreateTenant", request, lambda r: _results.tenant(r.tenant), False
    )


def get_tenant(name: str) -> Unary[Tenant]:
    request = tenants_pb2.GetTenantRequest(name=name)
    return Unary("TenantService", "GetTenant", request, lambda r: _results.tenant(r.tenant))


def list_tenants(limit: int, cursor_token: str) -> Unary[Page[Tenant]]:
    request = tenants_pb2.ListTenantsRequest(limit=limit, cursor=cursor(cursor_token))
    return Unary(
        "TenantService",
        "ListTenants",
        request,
        lambda r: Page(tuple(_results.tenant(t) for t in r.tenants), r.next_cursor.token),
    )


def suspend_tenant(name: str, reason: str) -> Unary[WriteResult]:
    request = tenants_pb2.SuspendTenantRequest(name=name, reason=reason)
    return Unary(
        "TenantService", "SuspendTenant", request, lambda r: WriteResult(_written(r)), False
    )


def reactivate_tenant(name: str, reason: str) -> Unary[WriteResult]:
    request = tenants_pb2.ReactivateTenantRequest(name=name, reason=reason)
    return Unary(
        "TenantService", "ReactivateTenant", request, lambda r: WriteResult(_written(r)), False
    )


def delete_tenant(name: str, reason: str, expected_export_sha256: str) -> Unary[TenantDeletion]:
    request = tenants_pb2.DeleteTenantRequest(
        name=name, reason=reason, expected_export_sha256=expected_export_sha256
    )
    return Unary(
        "TenantService",
        "DeleteTenant",
        request,
        lambda r: TenantDeletion(
            r.export,
            r.relationship_count,
            r.export_sha256,
            tuple(r.revoked_key_ids),
            r.deleted_at.token,
        ),
        False,
    )


def export_tenant(name: str) -> Collect[TenantExport]:
    request = tenants_pb2.ExportTenantRequest(name=name)
    return Collect("TenantService", "ExportTenant", request, _tenant_export)


def _tenant_export(responses: list[tenants_pb2.ExportTenantResponse]) -> TenantExport:
    export = "".join(r.chunk for r in responses)
    last = responses[-1] if responses else tenants_pb2.ExportTenantResponse()
    # The digest covers the whole export: a stream cut short or garbled must not pass
    # for a complete export that a later DeleteTenant would then purge against.
    if hashlib.sha256(export.encode()).hexdigest() != last.export_sha256:
        raise error_for(
            grpc.StatusCode.DATA_LOSS,
            "the streamed export does not match its SHA-256; export it again",
        )
    return TenantExport(export, last.relationship_count, last.export_sha256, last.exported_at.token)


# -- API keys ---------------------------------------------------------------------------


def _new_key(response: Any) -> NewKey:
    return NewKey(_results.api_key(response.key), response.secret)


def create_key(
    tenant: str, scopes: Iterable[str], description: str, expire_time: datetime | None, reason: str
) -> Unary[NewKey]:
    request = keys_pb2.CreateKeyRequest(
        tenant=tenant,
        scopes=list(scopes),
        description=description,
        expire_time=timestamp(expire_time, "expire_time"),
        reason=reason,
    )
    return Unary("KeysService", "CreateKey", request, _new_key, False)


def list_keys(tenant: str, limit: int, cursor_token: str) -> Unary[Page[ApiKey]]:
    request = keys_pb2.ListKeysRequest(tenant=tenant, limit=limit, cursor=cursor(cursor_token))
    return Unary(
        "KeysService",
        "ListKeys",
        request,
        lambda r: Page(tuple(_results.api_key(k) for k in r.keys), r.next_cursor.token),
    )


def revoke_key(tenant: str, key_id: str, reason: str) -> Unary[ApiKey]:
    # Revoking twice is harmless (keys.proto), so a retry is safe.
    request = keys_pb2.RevokeKeyRequest(tenant=tenant, key_id=key_id, reason=reason)
    return Unary("KeysService", "RevokeKey", request, lambda r: _results.api_key(r.key))


def rotate_key(tenant: str, key_id: str, overlap: timedelta | None, reason: str) -> Unary[NewKey]:
    duration = None
    if overlap is not None:
        duration = duration_pb2.Duration()
        duration.FromTimedelta(overlap)
    request = keys_pb2.RotateKeyRequest(
        tenant=tenant, key_id=key_id, overlap=duration, reason=reason
    )
    return Unary("KeysService", "RotateKey", request, _new_key, False)


# -- roles and bindings -----------------------------------------------------------------


def save_role(
    method: str,
    tenant: str,
    name: str,
    permissions: Iterable[PermissionSpec],
    description: str,
) -> Unary[RoleResult]:
    """CreateRole or UpdateRole (the same message)."""
    role = tenancy_pb2.Role(
        name=name,
        description=description,
        permissions=[
            tenancy_pb2.RolePermission(resource_type=p[0], permission=p[1])
            if isinstance(p, tuple)
            else tenancy_pb2.RolePermission(resource_type=p.resource_type, permission=p.permission)
            for p in permissions
        ],
    )
    request: Any = (
        tenancy_pb2.CreateRoleRequest(tenant=tenant, role=role)
        if method == "CreateRole"
        else tenancy_pb2.UpdateRoleRequest(tenant=tenant, role=role)
    )
    return Unary(
        "TenancyService",
        method,
        request,
        lambda r: RoleResult(_results.role(r.role), _written(r)),
        False,
        tenant,
        _written,
    )


def delete_role(tenant: str, name: str, cascade: bool) -> Unary[DeleteRoleResult]:
    request = tenancy_pb2.DeleteRoleRequest(tenant=tenant, name=name, cascade=cascade)
    return Unary(
        "TenancyService",
        "DeleteRole",
        request,
        lambda r: DeleteRoleResult(_written(r), r.deleted_binding_count),
        False,
        tenant,
        _written,
    )


def list_roles(
    tenant: str, consistency: core_pb2.Consistency | None, limit: int, cursor_token: str
) -> Unary[Page[RoleValue]]:
    request = tenancy_pb2.ListRolesRequest(
        tenant=tenant, consistency=consistency, limit=limit, cursor=cursor(cursor_token)
    )
    return Unary(
        "TenancyService",
        "ListRoles",
        request,
        lambda r: Page(
            tuple(_results.role(x) for x in r.roles), r.next_cursor.token, r.read_at.token
        ),
    )


def _binding(role: str, subject: SubjectRef | None, resource: Ref | None) -> core_pb2.RoleBinding:
    return core_pb2.RoleBinding(
        role=role, subject=optional_subject(subject), resource=optional_object(resource)
    )


def create_binding(
    tenant: str, role: str, subject: SubjectRef, resource: Ref | None
) -> Unary[BindingResult]:
    request = tenancy_pb2.CreateBindingRequest(
        tenant=tenant, binding=_binding(role, subject, resource)
    )
    return Unary(
        "TenancyService",
        "CreateBinding",
        request,
        lambda r: BindingResult(_results.binding(r.binding), _written(r)),
        False,
        tenant,
        _written,
    )


def delete_binding(tenant: str, binding_id: str) -> Unary[WriteResult]:
    request = tenancy_pb2.DeleteBindingRequest(tenant=tenant, binding_id=binding_id)
    return Unary(
        "TenancyService",
        "DeleteBinding",
        request,
        lambda r: WriteResult(_written(r)),
        False,
        tenant,
        _written,
    )


def list_bindings(
    tenant: str,
    subject: SubjectRef | None,
    role: str,
    resource: Ref | None,
    consistency: core_pb2.Consistency | None,
    limit: int,
    cursor_token: str,
) -> Unary[Page[RoleBinding]]:
    request = tenancy_pb2.ListBindingsRequest(
        tenant=tenant,
        subject=optional_subject(subject),
        role=role,
        resource=optional_object(resource),
        consistency=consistency,
        limit=limit,
        cursor=cursor(cursor_token),
    )
    return Unary(
        "TenancyService",
        "ListBindings",
        request,
        lambda r: Page(
            tuple(_results.binding(b) for b in r.bindings), r.next_cursor.token, r.read_at.token
        ),
    )


def grant_reach(
    tenant: str,
    *,
    binding_id: str,
    role: str,
    subject: SubjectRef | None,
    resource: Ref | None,
    relationship: str | core_pb2.Relationship | None,
    consistency: core_pb2.Consistency | None,
    limit: int,
    cursor_token: str,
) -> Unary[GrantReachResult]:
    request = tenancy_pb2.GrantReachRequest(
        tenant=tenant, consistency=consistency, limit=limit, cursor=cursor(cursor_token)
    )
    # The grant is a oneof: set only what was given, so that the server names a missing
    # or doubled grant itself.
    if binding_id:
        request.binding_id = binding_id
    if role or subject:
        request.binding.CopyFrom(_binding(role, subject, resource))
    if relationship is not None:
        request.relationship.CopyFrom(contextual([relationship])[0])
    return Unary("TenancyService", "GrantReach", request, _results.grant_reach)


# -- subject status and SCIM ------------------------------------------------------------


def get_subject_status(
    tenant: str, subject: Ref, consistency: core_pb2.Consistency | None
) -> Unary[SubjectStatus]:
    request = tenancy_pb2.GetSubjectStatusRequest(
        tenant=tenant, subject=optional_object(subject), consistency=consistency
    )
    return Unary("TenancyService", "GetSubjectStatus", request, _results.subject_status)


def _status_change(response: Any) -> StatusChange:
    return StatusChange(_results.subject_status_name(response.previous_status), _written(response))


def suspend_subject(tenant: str, subject: Ref, reason: str) -> Unary[StatusChange]:
    request = tenancy_pb2.SuspendSubjectRequest(
        tenant=tenant, subject=optional_object(subject), reason=reason
    )
    return Unary(
        "TenancyService", "SuspendSubject", request, _status_change, False, tenant, _written
    )


def reactivate_subject(tenant: str, subject: Ref, reason: str) -> Unary[StatusChange]:
    request = tenancy_pb2.ReactivateSubjectRequest(
        tenant=tenant, subject=optional_object(subject), reason=reason
    )
    return Unary(
        "TenancyService", "ReactivateSubject", request, _status_change, False, tenant, _written
    )


def deprovision_subject(tenant: str, subject: Ref, reason: str) -> Unary[DeprovisionResult]:
    request = tenancy_pb2.DeprovisionSubjectRequest(
        tenant=tenant, subject=optional_object(subject), reason=reason
    )
    return Unary(
        "TenancyService",
        "DeprovisionSubject",
        request,
        lambda r: DeprovisionResult(
            _results.subject_status_name(r.previous_status),
            tuple(text.format_relationship(x) for x in r.removed_relationships),
            tuple(_results.binding(b) for b in r.removed_bindings),
            _written(r),
        ),
        False,
        tenant,
        _written,
    )


def get_scim_sync(tenant: str) -> Unary[ScimSync]:
    request = tenancy_pb2.GetScimSyncRequest(tenant=tenant)
    return Unary("TenancyService", "GetScimSync", request, _results.scim_sync)


def repair_scim_drift(tenant: str, reason: str) -> Unary[ScimRepair]:
    request = tenancy_pb2.RepairScimDriftRequest(tenant=tenant, reason=reason)
    return Unary(
        "TenancyService",
        "RepairScimDrift",
        request,
        lambda r: ScimRepair(_results.scim_drift(r.repaired), _written(r)),
        False,
        tenant,
        _written,
    )
