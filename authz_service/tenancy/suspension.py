"""A suspended tenant, as data: `__tenant:state#suspended@__tenant:state`.

SuspendTenant writes this marker (and ReactivateTenant deletes it) in the same
transaction that sets the registry's state (store/registry.py), at a new revision of the
tenant. A decision at revision R is denied when the marker is live at R: from the
token SuspendTenant returns every decision is denied, answers cached earlier included
(cache keys hold the revision), and a replayed decision keeps its original answer.

Read once per (tenant, revision) and kept in a small LRU, so a check costs no read for it
while the revision does not change.
"""

from __future__ import annotations

from datetime import datetime

from cachetools import LRUCache

from authz_service.model import (
    CaveatRef,
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    Revision,
    SubjectRef,
    UpdateOp,
)
from authz_service.store.protocol import RelationshipReader
from authz_service.tenancy.encoding import META, TENANT

__all__ = ["MARKER_KEY", "TenantSuspensions", "suspension_update"]

_STATE = "state"
_SUSPENDED = "suspended"
_FILTER = RelationshipFilter(TENANT, (_STATE,), _SUSPENDED)
_OBJECT = ObjectRef(TENANT, _STATE)
_SUBJECT = SubjectRef(TENANT, _STATE)
MARKER_KEY = (_OBJECT, _SUSPENDED, _SUBJECT)
"""The marker's `Relationship.key`: what an export of the tenant's own data leaves out."""


def suspension_update(suspended: bool, reason: str, at: datetime) -> RelationshipUpdate:
    """The marker's write (TOUCH) or removal (DELETE)."""
    meta = CaveatRef(META, FrozenContext({"reason": reason, "update_time": at.isoformat()}))
    marker = Relationship(_OBJECT, _SUSPENDED, _SUBJECT, meta)
    return RelationshipUpdate(UpdateOp.TOUCH if suspended else UpdateOp.DELETE, marker)


class TenantSuspensions:
    def __init__(self, reader: RelationshipReader, *, size: int = 1024) -> None:
        self._reader = reader
        self._cache: LRUCache[tuple[str, Revision], bool] = LRUCache(maxsize=size)

    async def suspended(self, tenant: str, revision: Revision) -> bool:
        key = (tenant, revision)
        found = self._cache.get(key)
        if found is None:
            found = bool(await self._reader.read(tenant, revision, _FILTER, limit=1))
            self._cache[key] = found
        return found
