"""LookupSubjects: which subjects of a type may act on one resource.

Candidates come from expanding the resource forward through every branch of the schema,
subtracted ones included (a subtracted subject is exactly what a wildcard result must
list as excluded), and from the subjects grant sources (role bindings) name. Each
candidate is decided by Check with the request's shared memo. A reachable wildcard is
decided by checking the wildcard itself as the subject: the id `*`
matches no concrete relationship, only wildcard ones, so it stands for "any subject not
named anywhere", and every concrete candidate is reported either individually or among
the wildcard's exclusions, each with its own decision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence

from authz_service.engine.decide import decide
from authz_service.engine.request import RequestState
from authz_service.engine.types import CheckItem, Decision, ExcludedSubject, SubjectResult
from authz_service.model import (
    WILDCARD,
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    SubjectRef,
)
from authz_service.schema.ast import (
    Arrow,
    Exclusion,
    Expr,
    Intersection,
    RelationRef,
    SelfRef,
    Union,
)

__all__ = ["candidate_subjects", "lookup_subjects"]

_SLICE = 1_024  # relationships handled between two of the walk's yields at most


def _leaves(expr: Expr) -> list[Expr]:
    if isinstance(expr, Union | Intersection):
        return [leaf for child in expr.children for leaf in _leaves(child)]
    if isinstance(expr, Exclusion):
        return _leaves(expr.base) + _leaves(expr.subtracted)
    return [expr]


async def candidate_subjects(
    state: RequestState,
    resource: ObjectRef,
    permission: str,
    subject_type: str,
    subject_relation: str,
) -> tuple[set[str], bool]:
    """Concrete subject ids reachable from `resource#permission`, and whether a wildcard
    of `subject_type` is.

    The walk is bounded as one decision (`RequestState.walked`): each relation or
    permission of an object it expands is a subproblem; a step leading on to more
    subject sets (or arrow targets) than AUTHZ_MAX_FANOUT is refused before any of them
    is followed, as the Check of a candidate would refuse it, but without walking all
    of them first; and it stops at the deadline, yielding to the event loop as it goes."""
    state.begin_decision()
    schema = state.snapshot.schema
    ids: set[str] = set()
    wildcard = False
    seen: set[tuple[ObjectRef, str]] = set()
    stack = [(resource, permission)]

    def take(s: SubjectRef) -> bool:
        """Note `s` if it is of the kind asked (True: the wildcard), and walk on from it
        if it is a subject set."""
        found = False
        if s.type == subject_type and s.relation == subject_relation:
            if s.id == WILDCARD:
                found = True
            else:
                ids.add(s.id)
        if s.relation and schema.member(s.type, s.relation) is not None:
            stack.append((s.object, s.relation))
        return found

    while stack:
        obj, name = stack.pop()
        if (obj, name) in seen:
            continue
        seen.add((obj, name))
        await state.walked(1, 0)
        if subject_relation and obj.type == subject_type and name == subject_relation:
            ids.add(obj.id)
        for source in state.grant_sources:  # subjects of role bindings
            for s in await source.subject_candidates(state, obj, name):
                wildcard |= take(s)
        perm = schema.permissions.get((obj.type, name))
        for leaf in _leaves(perm.expr) if perm else ():
            if isinstance(leaf, RelationRef):
                stack.append((obj, leaf.name))
            elif isinstance(leaf, SelfRef):
                if not subject_relation and obj.type == subject_type:
                    ids.add(obj.id)
            elif isinstance(leaf, Arrow):
                read = await state.reads.read(
                    RelationshipFilter(obj.type, (obj.id,), leaf.relation)
                )
                targets = [
                    rel.subject.object
                    for rel in read.live
                    if schema.member(rel.subject.type, leaf.target) is not None
                ]
                if len(targets) > state.limits.max_fanout:
                    raise state.fanout_error(f"{obj}#{leaf.relation}", len(targets))
                stack.extend((target, leaf.target) for target in targets)
                await state.walked(0, len(read.live))
        if schema.relations.get((obj.type, name)) is None:
            continue
        read = await state.reads.read(RelationshipFilter(obj.type, (obj.id,), name))
        _check_fanout(state, obj, name, read.live)
        for start in range(0, len(read.live), _SLICE):
            part = read.live[start : start + _SLICE]
            for rel in part:
                wildcard |= take(rel.subject)
            await state.walked(0, len(part))
    return ids, wildcard


def _check_fanout(
    state: RequestState, obj: ObjectRef, name: str, rels: Sequence[Relationship]
) -> None:
    """Refuse `obj#name` when more of `rels` than the fan-out limit are subject sets of
    one kind: Check counts them so (`group:x#member` and `team:y#member` apart)."""
    limit = state.limits.max_fanout
    if len(rels) <= limit:
        return
    kinds = Counter((r.subject.type, r.subject.relation) for r in rels if r.subject.relation)
    if kinds and max(kinds.values()) > limit:
        raise state.fanout_error(f"{obj}#{name}", max(kinds.values()))


async def lookup_subjects(
    state: RequestState,
    *,
    resource: ObjectRef,
    permission: str,
    subject_type: str,
    subject_relation: str,
    context: FrozenContext,
    after: str | None,
    limit: int | None,
) -> AsyncIterator[SubjectResult]:
    ids, wildcard = await candidate_subjects(
        state, resource, permission, subject_type, subject_relation
    )

    async def decision(subject_id: str) -> tuple[Decision, tuple[str, ...]]:
        subject = SubjectRef(subject_type, subject_id, subject_relation)
        result = await decide(state, CheckItem(resource, permission, subject, context))
        return result.decision, result.missing_context

    sent = 0
    # Concrete subjects that an ALLOWED wildcard covers only under a condition are
    # reported among its exclusions, not on their own (as SpiceDB does), so that nobody
    # reading the wildcard takes them for allowed.
    hidden: set[str] = set()
    if wildcard:
        decided, missing = await decision(WILDCARD)
        if decided is not Decision.DENIED:
            excluded = []
            for subject_id in sorted(ids):
                own, own_missing = await decision(subject_id)
                if own is Decision.DENIED:
                    excluded.append(ExcludedSubject(subject_id, own))
                elif own is Decision.CONDITIONAL and decided is Decision.ALLOWED:
                    excluded.append(ExcludedSubject(subject_id, own, own_missing))
                    hidden.add(subject_id)
            if after is None or after < WILDCARD:
                sent += 1
                yield SubjectResult(WILDCARD, decided, missing, tuple(excluded))
    for subject_id in sorted(ids - hidden):
        if after is not None and subject_id <= after:
            continue
        if limit is not None and sent >= limit:
            return
        decided, missing = await decision(subject_id)
        if decided is not Decision.DENIED:
            sent += 1
            yield SubjectResult(subject_id, decided, missing)
