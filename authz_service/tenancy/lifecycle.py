"""Reading subject status (active, suspended, deprovisioned) at a revision.

Every decision asks for its subject's status, so a tenant with few inactive subjects
(up to `max_indexed`) is held in memory per (tenant, revision) after one read, and a
check then costs no read for it; a tenant with more costs one indexed read per
uncached decision. Status is data at a revision, so a decision at revision R sees exactly
the suspensions committed by R: from the token a suspension returns, every decision
(cached ones too, since cache keys hold the revision) denies.
"""

from __future__ import annotations

from cachetools import LRUCache

from authz_service.model import ObjectRef, RelationshipFilter, Revision
from authz_service.store.protocol import RelationshipReader
from authz_service.tenancy.encoding import (
    ACTIVE,
    STATUS,
    StatusRecord,
    SubjectStatus,
    status_from,
)

__all__ = ["SubjectStatuses"]

_Inactive = dict[tuple[str, str], SubjectStatus]


class SubjectStatuses:
    def __init__(
        self, reader: RelationshipReader, *, size: int = 256, max_indexed: int = 1000
    ) -> None:
        self._reader = reader
        self._max = max_indexed
        self._cache: LRUCache[tuple[str, Revision], _Inactive | None] = LRUCache(maxsize=size)
        self.loads = 0

    async def _inactive(self, tenant: str, revision: Revision) -> _Inactive | None:
        """Inactive subjects of the tenant, or None when there are too many to hold."""
        key = (tenant, revision)
        if key in self._cache:
            return self._cache[key]
        self.loads += 1
        rows = await self._reader.read(
            tenant, revision, RelationshipFilter(STATUS), limit=self._max + 1
        )
        found: _Inactive | None = None
        if len(rows) <= self._max:
            found = {}
            for rel in rows:
                subject = (rel.subject.type, rel.subject.id)
                status = status_from([rel]).status
                if found.get(subject) is not SubjectStatus.DEPROVISIONED:
                    found[subject] = status
        self._cache[key] = found
        return found

    async def status(self, tenant: str, revision: Revision, subject: ObjectRef) -> SubjectStatus:
        inactive = await self._inactive(tenant, revision)
        if inactive is not None:
            return inactive.get((subject.type, subject.id), SubjectStatus.ACTIVE)
        return (await self.record(tenant, revision, subject, with_history=False)).status

    async def record(
        self, tenant: str, revision: Revision, subject: ObjectRef, *, with_history: bool = True
    ) -> StatusRecord:
        """The full record (reason and time of the last change)."""
        flt = RelationshipFilter(STATUS, (subject.type,), None, subject.type, (subject.id,), "")
        rels = await self._reader.read(tenant, revision, flt)
        if with_history:
            history = RelationshipFilter(
                ACTIVE, (subject.type,), None, subject.type, (subject.id,), ""
            )
            rels += await self._reader.read(tenant, revision, history)
        return status_from(rels)

    async def inactive_of_type(
        self, tenant: str, revision: Revision, subject_type: str
    ) -> dict[str, SubjectStatus]:
        """Every inactive subject of one type (LookupSubjects leaves them out)."""
        inactive = await self._inactive(tenant, revision)
        if inactive is not None:
            return {i: s for (t, i), s in inactive.items() if t == subject_type}
        rows = await self._reader.read(
            tenant, revision, RelationshipFilter(STATUS, (subject_type,), None, subject_type)
        )
        found: dict[str, SubjectStatus] = {}
        for rel in rows:
            if found.get(rel.subject.id) is not SubjectStatus.DEPROVISIONED:
                found[rel.subject.id] = status_from([rel]).status
        return found
