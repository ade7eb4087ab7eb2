"""Subject lifecycle behind TenancyService, free of gRPC: the hooks an identity
provider's deprovisioning (SCIM) calls.

- suspend: the subject is denied everything from the returned token on; its
  relationships and bindings stay;
- reactivate: decisions follow the data again (whatever still exists in it);
- deprovision: denied everything, and in the same transaction every relationship whose
  subject is the object or a subject set of it (`user:alice`, `user:alice#friends`) and
  every binding whose subject it is are deleted; what was removed is returned and logged.

Each is one atomic store call at a new revision of the tenant, idempotent, and logged
as an administrative change. Denial itself is applied by `service/gates.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from authz_service.engine.inputs import require_definition
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
from authz_service.revisions import RevisionResolver
from authz_service.service import methods
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.relationships import is_internal
from authz_service.service.schemas import SchemaManager
from authz_service.store.protocol import Store, WholeResources
from authz_service.tenancy import Binding, StatusRecord, SubjectStatus, SubjectStatuses
from authz_service.tenancy.encoding import (
    BINDING,
    STATUS,
    SUBJECT_OF,
    bindings_from,
    status_relationship,
)

__all__ = ["Deprovisioned", "LifecycleService"]

_LOGGED = 100  # an admin record lists at most this many removed relationships


@dataclass(frozen=True, slots=True)
class Deprovisioned:
    revision: Revision
    previous: SubjectStatus
    relationships: list[Relationship]
    bindings: list[Binding]


class LifecycleService:
    def __init__(
        self,
        *,
        store: Store,
        schemas: SchemaManager,
        resolver: RevisionResolver,
        audit: AuditTrail,
        statuses: SubjectStatuses,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._schemas = schemas
        self._resolver = resolver
        self._audit = audit
        self._statuses = statuses
        self._clock = clock

    async def status(
        self, tenant: str, subject: ObjectRef, consistency: Consistency
    ) -> tuple[StatusRecord, Revision]:
        await self._require_type(subject)
        revision = await self._resolver.resolve(tenant, consistency)
        return await self._statuses.record(tenant, revision, subject), revision

    async def suspend(
        self, tenant: str, subject: ObjectRef, reason: str, call: CallInfo
    ) -> tuple[Revision, SubjectStatus]:
        started = time.perf_counter()
        previous = await self._previous(tenant, subject)
        rel = status_relationship(subject, SubjectStatus.SUSPENDED, reason, self._clock())
        revision = await self._store.write(tenant, [RelationshipUpdate(UpdateOp.TOUCH, rel)])
        await self._logged(
            tenant, call, revision, started, methods.SUSPEND_SUBJECT, subject, reason, {}
        )
        return revision, previous

    async def reactivate(
        self, tenant: str, subject: ObjectRef, reason: str, call: CallInfo
    ) -> tuple[Revision, SubjectStatus]:
        started = time.perf_counter()
        previous = await self._previous(tenant, subject)
        marker = status_relationship(subject, SubjectStatus.ACTIVE, reason, self._clock())
        revision, _ = await self._store.apply(
            tenant,
            [RelationshipUpdate(UpdateOp.TOUCH, marker)],
            [_status_filter(subject)],
        )
        await self._logged(
            tenant, call, revision, started, methods.REACTIVATE_SUBJECT, subject, reason, {}
        )
        return revision, previous

    async def deprovision(
        self, tenant: str, subject: ObjectRef, reason: str, call: CallInfo
    ) -> Deprovisioned:
        started = time.perf_counter()
        previous = await self._previous(tenant, subject)
        # The subject's bindings are found inside the write and deleted whole (one made
        # since any read here too); the subject filter takes the rest, status rows included.
        uses = RelationshipFilter(BINDING, None, SUBJECT_OF, subject.type, (subject.id,))
        deletes: list[RelationshipFilter | WholeResources] = [
            WholeResources(uses),
            RelationshipFilter(subject_type=subject.type, subject_ids=(subject.id,)),
        ]
        status = status_relationship(subject, SubjectStatus.DEPROVISIONED, reason, self._clock())
        revision, deleted = await self._store.apply(
            tenant, [RelationshipUpdate(UpdateOp.TOUCH, status)], deletes
        )
        removed = [r for r in deleted if not is_internal(r)]
        bindings = sorted(bindings_from(deleted).values(), key=lambda b: b.binding_id)
        details = {
            "removed_relationship_count": len(removed),
            "removed_relationships": [str(r) for r in removed[:_LOGGED]],
            "removed_bindings": [b.describe() for b in bindings],
        }
        await self._logged(
            tenant, call, revision, started, methods.DEPROVISION_SUBJECT, subject, reason, details
        )
        return Deprovisioned(revision, previous, removed, bindings)

    async def _require_type(self, subject: ObjectRef) -> None:
        require_definition(await self._schemas.require(), subject.type, "subject.object_type")

    async def _previous(self, tenant: str, subject: ObjectRef) -> SubjectStatus:
        await self._require_type(subject)
        head = await self._resolver.resolve(tenant, Consistency(ConsistencyMode.FULLY_CONSISTENT))
        return (await self._statuses.record(tenant, head, subject, with_history=False)).status

    async def _logged(
        self,
        tenant: str,
        call: CallInfo,
        revision: Revision,
        started: float,
        action: str,
        subject: ObjectRef,
        reason: str,
        details: dict[str, object],
    ) -> None:
        self._resolver.observe(tenant, revision)
        await self._audit.admin(
            tenant,
            call,
            action=action,
            resource=str(subject),
            subject=str(subject),
            reason=reason,
            revision=revision,
            schema_version=self._schemas.current.version,
            details=details,
            started=started,
        )


def _status_filter(subject: ObjectRef) -> RelationshipFilter:
    return RelationshipFilter(STATUS, (subject.type,), None, subject.type, (subject.id,), "")
