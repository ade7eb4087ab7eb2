"""SCIM reconciliation: what the IdP last asserted against what authorization holds.

The stored SCIM resources are the IdP's assertions; the relationships and subject
statuses are what decisions use. They diverge when something writes around SCIM (a
relationship added to a SCIM-managed group through the gRPC API, a manual suspension) or
when an effect was lost. `drift` reports the differences at one revision; `repair`
converges authorization to the IdP's state: one relationship write for the memberships,
one lifecycle call per user, each an admin record in the decision log with the reason.

The sync status (last push, last error) is kept in the store beside the resources
(`ProvisioningService.note_push`), so every worker and replica reports the same one
whichever answered the push; the counts and the time of the last change come from the
stored resources.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from authz_service.model import (
    Consistency,
    ConsistencyMode,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    Revision,
    UpdateOp,
)
from authz_service.service.audit import CallInfo
from authz_service.service.lifecycle import LifecycleService
from authz_service.service.provisioning import GROUP, USER, ProvisioningService
from authz_service.service.relationships import RelationshipService
from authz_service.store.protocol import RelationshipReader
from authz_service.tenancy import SubjectStatus

__all__ = ["Drift", "Reconciler", "SyncStatus"]


@dataclass(frozen=True, slots=True)
class SyncStatus:
    last_push: datetime | None  # the last push answered successfully, by any process
    last_change: datetime | None  # the newest `meta.lastModified` of the tenant's resources
    last_error_time: datetime | None
    last_error: str
    users: int
    active_users: int
    groups: int
    memberships: int


@dataclass(frozen=True, slots=True)
class Drift:
    revision: Revision
    # Users the IdP deactivated that are active here, and the reverse.
    deactivated_upstream: list[ObjectRef] = field(default_factory=list)
    inactive_here: list[ObjectRef] = field(default_factory=list)
    # Memberships of SCIM groups here that the IdP does not assert: of SCIM users or
    # groups (removed upstream, the removal lost) or of anything else (written outside).
    removed_upstream: list[Relationship] = field(default_factory=list)
    written_outside: list[Relationship] = field(default_factory=list)
    # Memberships the IdP asserts that are missing here.
    missing_here: list[Relationship] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.deactivated_upstream
            or self.inactive_here
            or self.removed_upstream
            or self.written_outside
            or self.missing_here
        )


class Reconciler:
    def __init__(
        self,
        *,
        provisioning: ProvisioningService,
        reader: RelationshipReader,
        lifecycle: LifecycleService,
        relationships: RelationshipService,
    ) -> None:
        self._provisioning = provisioning
        self._reader = reader
        self._lifecycle = lifecycle
        self._relationships = relationships

    async def status(self, tenant: str) -> SyncStatus:
        users = await self._provisioning.list(tenant, USER)
        groups = await self._provisioning.list(tenant, GROUP)
        seen = await self._provisioning.sync(tenant)
        return SyncStatus(
            last_push=seen.last_push,
            last_change=max((r.modified for r in [*users, *groups]), default=None),
            last_error_time=seen.last_error_time,
            last_error=seen.last_error,
            users=len(users),
            active_users=sum(1 for u in users if u.document.get("active") is not False),
            groups=len(groups),
            memberships=sum(len(g.document.get("members") or []) for g in groups),
        )

    async def drift(self, tenant: str) -> Drift:
        head = await self._provisioning.head(tenant)
        at = Consistency(ConsistencyMode.AT_EXACT_SNAPSHOT, head)
        mapping = self._provisioning.mapping
        drift = Drift(head)
        users = await self._provisioning.list(tenant, USER)
        for user in users:
            subject = ObjectRef(mapping.user_type, user.resource_id)
            record, _ = await self._lifecycle.status(tenant, subject, at)
            active_here = record.status is SubjectStatus.ACTIVE
            if user.document.get("active") is False and active_here:
                drift.deactivated_upstream.append(subject)
            elif user.document.get("active") is not False and not active_here:
                drift.inactive_here.append(subject)
        groups = await self._provisioning.list(tenant, GROUP)
        managed = {(USER, u.resource_id) for u in users} | {(GROUP, g.resource_id) for g in groups}
        managed_subjects = {self._provisioning.subject_of(k, i) for k, i in managed}
        for group in groups:
            asserted = await self._provisioning.members(tenant, group)
            resource = ObjectRef(mapping.group_type, group.resource_id)
            flt = RelationshipFilter(
                mapping.group_type, (group.resource_id,), mapping.member_relation
            )
            held = {r.subject: r for r in await self._reader.read(tenant, head, flt)}
            for member in sorted(set(held) - asserted, key=str):
                kind = (
                    drift.removed_upstream if member in managed_subjects else drift.written_outside
                )
                kind.append(held[member])
            for member in sorted(asserted - set(held), key=str):
                drift.missing_here.append(Relationship(resource, mapping.member_relation, member))
        return drift

    async def repair(self, tenant: str, reason: str, call: CallInfo) -> tuple[Drift, Revision]:
        """Converge to the IdP's state; returns what was repaired and the last revision
        written (the head when nothing was)."""
        drift = await self.drift(tenant)
        why = CallInfo(call.credential_id, call.deadline, call.actor, f"scim repair: {reason}")
        revision = drift.revision
        updates = [
            RelationshipUpdate(UpdateOp.DELETE, r)
            for r in [*drift.removed_upstream, *drift.written_outside]
        ] + [RelationshipUpdate(UpdateOp.TOUCH, r) for r in drift.missing_here]
        if updates:
            revision = await self._relationships.write(tenant, updates, why)
        for subject in drift.deactivated_upstream:
            revision, _ = await self._lifecycle.suspend(tenant, subject, why.reason or "", why)
        for subject in drift.inactive_here:
            revision, _ = await self._lifecycle.reactivate(tenant, subject, why.reason or "", why)
        return drift, revision
