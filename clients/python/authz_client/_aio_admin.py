"""AsyncAuthzClient's administration and audit methods: roles and bindings, subject
status, SCIM sync, the decision log (tenants, API keys and service accounts are in
_aio_tenants.py).

`_sync_admin.py` is the blocking twin, line for line; tests/test_coverage.py checks that
the two have the same methods and signatures.
"""

# ruff: noqa: ASYNC109 -- `timeout` is the gRPC deadline (see _aio_base.py)

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from authz_client import _ops, _ops_admin
from authz_client._aio_base import Timeout
from authz_client._aio_tenants import AsyncTenants
from authz_client._ops_admin import PermissionSpec, Ref, SubjectRef
from authz_client._stubs import core_pb2
from authz_client.types import Consistency, Decision, WriteResult
from authz_client.types_admin import (
    BindingResult,
    DeleteRoleResult,
    DeprovisionResult,
    GrantReachResult,
    Page,
    Role,
    RoleBinding,
    RoleResult,
    ScimRepair,
    ScimSync,
    StatusChange,
    SubjectStatus,
)
from authz_client.types_audit import (
    DecisionRecord,
    LogVerification,
    ReplayedDecision,
    ReplaySummary,
)

__all__ = ["AsyncAdmin"]


class AsyncAdmin(AsyncTenants):
    # -- roles and bindings (TenancyService) ------------------------------------------------

    async def create_role(
        self,
        name: str,
        permissions: Iterable[PermissionSpec],
        *,
        description: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> RoleResult:
        """A custom role granting `permissions`, e.g. `[("document", "view")]`."""
        op = _ops_admin.save_role(
            "CreateRole", self._core.tenant(tenant), name, permissions, description
        )
        return await self._run(op, timeout)

    async def update_role(
        self,
        name: str,
        permissions: Iterable[PermissionSpec],
        *,
        description: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> RoleResult:
        """Replace a custom role's permissions and description."""
        op = _ops_admin.save_role(
            "UpdateRole", self._core.tenant(tenant), name, permissions, description
        )
        return await self._run(op, timeout)

    async def delete_role(
        self,
        name: str,
        *,
        cascade: bool = False,
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> DeleteRoleResult:
        """Delete a custom role; with `cascade`, its bindings too."""
        return await self._run(
            _ops_admin.delete_role(self._core.tenant(tenant), name, cascade), timeout
        )

    async def list_roles(
        self,
        *,
        consistency: Consistency | None = None,
        limit: int = 0,
        cursor: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> Page[Role]:
        tenant = self._core.tenant(tenant)
        op = _ops_admin.list_roles(
            tenant, self._core.consistency(tenant, consistency), limit, cursor
        )
        return await self._run(op, timeout)

    async def create_binding(
        self,
        role: str,
        subject: SubjectRef,
        resource: Ref | None = None,
        *,
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> BindingResult:
        """Grant `role` to `subject` on `resource` (None: tenant-wide)."""
        op = _ops_admin.create_binding(self._core.tenant(tenant), role, subject, resource)
        return await self._run(op, timeout)

    async def delete_binding(
        self, binding_id: str, *, tenant: str | None = None, timeout: Timeout = "default"
    ) -> WriteResult:
        return await self._run(
            _ops_admin.delete_binding(self._core.tenant(tenant), binding_id), timeout
        )

    async def list_bindings(
        self,
        *,
        subject: SubjectRef | None = None,
        role: str = "",
        resource: Ref | None = None,
        consistency: Consistency | None = None,
        limit: int = 0,
        cursor: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> Page[RoleBinding]:
        """Bindings matching every filter given (none: all)."""
        tenant = self._core.tenant(tenant)
        op = _ops_admin.list_bindings(
            tenant,
            subject,
            role,
            resource,
            self._core.consistency(tenant, consistency),
            limit,
            cursor,
        )
        return await self._run(op, timeout)

    async def grant_reach(
        self,
        *,
        binding_id: str = "",
        role: str = "",
        subject: SubjectRef | None = None,
        resource: Ref | None = None,
        relationship: str | core_pb2.Relationship | None = None,
        consistency: Consistency | None = None,
        limit: int = 0,
        cursor: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> GrantReachResult:
        """How far one grant reaches: an existing binding (`binding_id`), a proposed one
        (`role`, `subject`, `resource`) or a relationship (text form). Give exactly one."""
        tenant = self._core.tenant(tenant)
        op = _ops_admin.grant_reach(
            tenant,
            binding_id=binding_id,
            role=role,
            subject=subject,
            resource=resource,
            relationship=relationship,
            consistency=self._core.consistency(tenant, consistency),
            limit=limit,
            cursor_token=cursor,
        )
        return await self._run(op, timeout)

    # -- subject status and SCIM (TenancyService) -------------------------------------------

    async def get_subject_status(
        self,
        subject: Ref,
        *,
        consistency: Consistency | None = None,
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> SubjectStatus:
        tenant = self._core.tenant(tenant)
        op = _ops_admin.get_subject_status(
            tenant, subject, self._core.consistency(tenant, consistency)
        )
        return await self._run(op, timeout)

    async def suspend_subject(
        self,
        subject: Ref,
        *,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> StatusChange:
        """Suspend `subject` (e.g. `user:bob`): its checks are DENIED until reactivated."""
        return await self._run(
            _ops_admin.suspend_subject(self._core.tenant(tenant), subject, reason), timeout
        )

    async def reactivate_subject(
        self,
        subject: Ref,
        *,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> StatusChange:
        return await self._run(
            _ops_admin.reactivate_subject(self._core.tenant(tenant), subject, reason), timeout
        )

    async def deprovision_subject(
        self,
        subject: Ref,
        *,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> DeprovisionResult:
        """Remove every relationship and binding of `subject`, for good."""
        return await self._run(
            _ops_admin.deprovision_subject(self._core.tenant(tenant), subject, reason), timeout
        )

    async def get_scim_sync(
        self, *, tenant: str | None = None, timeout: Timeout = "default"
    ) -> ScimSync:
        return await self._run(_ops_admin.get_scim_sync(self._core.tenant(tenant)), timeout)

    async def repair_scim_drift(
        self, *, reason: str = "", tenant: str | None = None, timeout: Timeout = "default"
    ) -> ScimRepair:
        return await self._run(
            _ops_admin.repair_scim_drift(self._core.tenant(tenant), reason), timeout
        )

    # -- the decision log (AuditService) ----------------------------------------------------

    def query_decisions(
        self,
        *,
        subject: SubjectRef | None = None,
        actor: SubjectRef | None = None,
        resource: Ref | None = None,
        action: str = "",
        decision: Decision | None = None,
        kind: str = "",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        limit: int = 0,
        cursor: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> AsyncIterator[DecisionRecord]:
        """Stream the logged decisions matching every filter given, oldest first."""
        op = _ops.query_decisions(
            self._core.tenant(tenant),
            subject=subject,
            actor=actor,
            resource=resource,
            action=action,
            decision=decision,
            kind=kind,
            start_time=start_time,
            end_time=end_time,
            limit=limit,
            cursor_token=cursor,
        )
        return self._run_stream(op, timeout)

    def replay_decisions(
        self,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        subject: SubjectRef | None = None,
        resource: Ref | None = None,
        schema_version: str = "",
        limit: int = 0,
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> AsyncIterator[ReplayedDecision | ReplaySummary]:
        """Replay the logged checks in a time range at their revisions: a `ReplayedDecision`
        per record, oldest first, then one `ReplaySummary`."""
        op = _ops.replay_decisions(
            self._core.tenant(tenant),
            start_time=start_time,
            end_time=end_time,
            subject=subject,
            resource=resource,
            schema_version=schema_version,
            limit=limit,
        )
        return self._run_stream(op, timeout)

    async def verify_log(
        self,
        *,
        public_key_pem: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> LogVerification:
        """Verify the tenant's hash chain (and checkpoint signatures, given the key)."""
        return await self._run(_ops.verify_log(self._core.tenant(tenant), public_key_pem), timeout)

    async def explain_decision(
        self, decision_id: str, *, tenant: str | None = None, timeout: Timeout = "default"
    ) -> DecisionRecord:
        """The logged record of a decision, with its explanation when one was recorded."""
        return await self._run(
            _ops.explain_decision(self._core.tenant(tenant), decision_id), timeout
        )
