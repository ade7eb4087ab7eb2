"""Extra sources of permissions, OR-ed into every permission the schema evaluates.

Role bindings plug in here: a source answers "does this subject hold `permission` on
`resource` by some grant outside the relationship graph". It is consulted wherever a
permission of an object is evaluated, including objects reached through arrows, so a
grant on a folder flows to its documents exactly as the schema's arrows say.

LookupResources and LookupSubjects find candidates from relationships only; a source
whose grants must show up there needs a candidate hook (not built yet).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from authz_service.engine.dispatch import SubResult
from authz_service.engine.types import Snapshot
from authz_service.model import FrozenContext, ObjectRef, SubjectRef

__all__ = ["GrantSource"]


@runtime_checkable
class GrantSource(Protocol):
    async def grants(
        self,
        snap: Snapshot,
        context: FrozenContext,
        resource: ObjectRef,
        permission: str,
        subject: SubjectRef,
    ) -> SubResult:
        """The grant's three-valued answer. Set `volatile=True` on the result if it
        depends on anything not fixed by (tenant, revision, schema version, context),
        and `valid_until` if it lapses at a known instant."""
        ...
