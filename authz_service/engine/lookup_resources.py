"""LookupResources: which objects of a type may the subject act on.

Candidates come from walking the schema backwards from the subject (see `reverse.py`):
relationships naming the subject, its wildcard, or a subject set it belongs to, plus what
grant sources (role bindings) say the subject may hold, then arrows and rewrites
backwards, to a fixpoint. Each candidate is then decided by Check
with the request's shared memo, so the answer agrees with Check by construction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable

from authz_service.engine.decide import decide
from authz_service.engine.request import RequestState
from authz_service.engine.reverse import Edge, Pair, ReverseIndex
from authz_service.engine.types import CheckItem, Decision, ResourceResult
from authz_service.model import (
    EMPTY_CONTEXT,
    WILDCARD,
    FrozenContext,
    ObjectRef,
    RelationshipFilter,
    SubjectRef,
)

__all__ = ["candidate_resources", "lookup_resources"]

_CHUNK = 500  # subject ids per reverse read


async def candidate_resources(
    state: RequestState,
    index: ReverseIndex,
    target: Pair,
    subject: SubjectRef,
    context: FrozenContext = EMPTY_CONTEXT,
) -> set[str]:
    relevant = index.relevant(target)
    found: dict[Pair, set[str]] = {}
    queue: deque[tuple[Pair, frozenset[str]]] = deque()

    def add(pair: Pair, ids: Iterable[str]) -> None:
        if pair not in relevant:
            return
        known = found.setdefault(pair, set())
        new = frozenset(i for i in ids if i not in known)
        if new:
            known.update(new)
            queue.append((pair, new))

    # Seeds: relationships naming the subject (or its wildcard) directly.
    kind = (subject.type, subject.relation)
    ids = (subject.id,) if subject.relation else (subject.id, WILDCARD)
    for pair in index.direct.get(kind, ()):
        if pair in relevant:
            flt = RelationshipFilter(pair[0], None, pair[1], subject.type, ids, subject.relation)
            add(pair, await _resource_ids(state, flt))
    if subject.relation:
        add(kind, (subject.id,))  # the subject set itself
    else:
        for pair in index.selfs.get(subject.type, ()):
            add(pair, (subject.id,))
    for source in state.grant_sources:  # role bindings reaching the subject
        granted = await source.resource_candidates(state, relevant, subject, context)
        for pair, granted_ids in granted.items():
            add(pair, granted_ids)

    while queue:
        state.check_deadline()
        pair, delta = queue.popleft()
        for edge in index.consumers.get(pair, ()):
            if edge.target in relevant:
                add(edge.target, await _follow(state, edge, delta))
    return found.get(target, set())


async def _follow(state: RequestState, edge: Edge, delta: frozenset[str]) -> set[str]:
    if edge.kind == "ref":
        return set(delta)
    result: set[str] = set()
    ordered = sorted(delta)
    for start in range(0, len(ordered), _CHUNK):
        flt = RelationshipFilter(
            edge.target[0],
            None,
            edge.relation,
            edge.source[0],
            tuple(ordered[start : start + _CHUNK]),
            edge.subject_relation,
        )
        result |= await _resource_ids(state, flt)
    return result


async def _resource_ids(state: RequestState, flt: RelationshipFilter) -> set[str]:
    read = await state.reads.read(flt)
    return {rel.resource.id for rel in read.live}


async def lookup_resources(
    state: RequestState,
    *,
    index: ReverseIndex,
    resource_type: str,
    permission: str,
    subject: SubjectRef,
    context: FrozenContext,
    after: str | None,
    limit: int | None,
) -> AsyncIterator[ResourceResult]:
    ids = await candidate_resources(state, index, (resource_type, permission), subject, context)
    sent = 0
    for resource_id in sorted(ids):
        if after is not None and resource_id <= after:
            continue
        if limit is not None and sent >= limit:
            return
        item = CheckItem(ObjectRef(resource_type, resource_id), permission, subject, context)
        result = await decide(state, item)
        if result.decision is not Decision.DENIED:
            sent += 1
            yield ResourceResult(resource_id, result.decision, result.missing_context)
