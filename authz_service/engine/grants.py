"""Extra sources of grants, OR-ed into every permission and relation the engine evaluates.

Role bindings plug in here (`authz_service.tenancy.BindingGrants`): a source answers
"does the subject of this subproblem hold its relation or permission on its resource by
some grant outside the relationship graph". It is consulted wherever a member of an
object is evaluated, including objects reached through arrows and subject sets, so a grant
on a folder flows to its documents exactly as the schema's arrows say.

A source receives the subproblem itself, so it reads through the request's reads (at the
snapshot's revision, request-only relationships included, memoized per request) and may
dispatch nested subproblems (`req.request.dispatch(req.child(obj, relation))`), which keeps
the subject and shares the memo, the depth limit and cycle detection.

LookupResources and LookupSubjects find candidates by walking relationships; the two
candidate hooks let a source add the candidates its grants create. Candidates may be a
superset: every one is decided by Check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from authz_service.engine.dispatch import Subproblem, SubResult
from authz_service.model import FrozenContext, ObjectRef, SubjectRef

if TYPE_CHECKING:
    from authz_service.engine.request import RequestState

__all__ = ["GrantSource", "Pair"]

Pair = tuple[str, str]
"""(type, relation or permission)."""


@runtime_checkable
class GrantSource(Protocol):
    async def grants(self, req: Subproblem) -> SubResult:
        """The grant's three-valued answer for `req`. Set `volatile=True` on the result
        if it depends on anything not fixed by (tenant, revision, schema version, context),
        and `valid_until` if it lapses at a known instant. An explanation node of kind
        `grant` is used as is; any other is wrapped in one."""
        ...

    async def resource_candidates(
        self,
        state: RequestState,
        pairs: frozenset[Pair],
        subject: SubjectRef,
        context: FrozenContext,
    ) -> Mapping[Pair, Iterable[str]]:
        """For LookupResources: ids of objects of type `pair[0]` on which `subject` may
        hold `pair[1]` by a grant, for the pairs of `pairs` this source grants."""
        ...

    async def subject_candidates(
        self, state: RequestState, resource: ObjectRef, name: str
    ) -> Sequence[SubjectRef]:
        """For LookupSubjects: the subjects (objects, subject sets or wildcards) that may
        hold `name` on `resource` by a grant; subject sets are expanded by the caller."""
        ...
