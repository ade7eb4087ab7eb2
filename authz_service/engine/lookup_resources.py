"""LookupResources: which objects of a type may the subject act on.

Candidates come from walking the schema backwards from the subject (see `reverse.py`):
relationships naming the subject, its wildcard, or a subject set it belongs to, plus what
grant sources (role bindings) say the subject may hold, then arrows and rewrites
backwards, to a fixpoint.

The walk also carries proofs, as SpiceDB's LookupResources does: a candidate reached
from the subject through relationships without caveats, each allowed by the schema,
along leaves that prove their targets (unions, relations, arrows; see `reverse.py`) is
allowed: Check would find the same finite chain and answer ALLOWED. A candidate of the
requested permission proven through the base of an exclusion is allowed when it is not
a candidate of what is subtracted. Every other candidate (reached through a caveat, an
intersection, an `.all()` arrow, a role binding, or an exclusion whose subtracted part
may hold) is decided by Check with the request's shared memo, so the answer agrees with
Check either way (tests/property/test_engine_differential.py, tests/engine/
test_lookup_proofs.py). An id without a proof is never allowed without Check.

A walk can take seconds (tens of thousands of candidates at a million relationships), and
a client paging through the results with `limit` and cursors asks for the same walk again
at the same revision on every page. With a `WalkCache` the candidates of large walks are
kept, keyed by everything they depend on (tenant, revision, schema, the question, the
context, the depth limit) and valid until the soonest expiry among the relationships the
walk read; a walk with request-only relationships is never kept, and a fully consistent
call never takes one (it may leave one for its continuation pages, which read at its
revision).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import AsyncIterator, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from authz_service.engine.decide import decide
from authz_service.engine.request import RequestState
from authz_service.engine.reverse import Edge, Guards, Pair, Proofs, ReverseIndex, plain_kind
from authz_service.engine.types import CheckItem, Decision, ResourceResult
from authz_service.model import (
    EMPTY_CONTEXT,
    WILDCARD,
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    SubjectRef,
)

__all__ = ["Candidates", "WalkCache", "candidate_resources", "lookup_resource_pages"]

_CHUNK = 500  # subject ids per reverse read
_SLICE = 1_024  # relationships handled between two of the walk's yields at most
_PAGE = 128  # results per page of a lookup
_KEPT_WALK = 1_000  # candidates a walk needs for a WalkCache to keep it (smaller: cheap)


@dataclass(frozen=True, slots=True)
class Candidates:
    """`ids`: every resource whose answer may not be DENIED (a superset); `proven`: those
    of them that are ALLOWED without asking Check."""

    ids: frozenset[str]
    proven: frozenset[str]


class _Walk:
    """The fixpoint over (type, relation or permission) pairs: `found` holds candidates,
    `proven` the candidates proven true by a chain of plain relationships along unions."""

    def __init__(self, state: RequestState, index: ReverseIndex, target: Pair) -> None:
        self.state = state
        self.index = index
        self.target = target
        # the subject, when it is a subject set: its relationships are not a fan-out
        self.own: tuple[Pair, str] | None = None
        self.guards = index.guards(target)
        relevant = set(index.relevant(target))
        for guards in self.guards:
            for pair in guards:
                relevant |= index.relevant(pair)
        self.relevant = frozenset(relevant)
        self.found: dict[Pair, set[str]] = {}
        self.proven: dict[Pair, set[str]] = {}
        # ids of `target` proven through an exclusion's base, by what it subtracts
        self.guarded: dict[Guards, set[str]] = {}
        # (pair, ids new to it, the length of the chains that reached them): breadth
        # first, so an id is first proven by one of its shortest chains
        self.queue: deque[tuple[Pair, frozenset[str], int]] = deque()

    def add(
        self, pair: Pair, ids: Iterable[str], proven: Iterable[str] = (), level: int = 0
    ) -> None:
        """New candidates of `pair`, some of them proven (`proven` is within `ids`), by
        chains of `level` steps. Ids new to either set are queued, so a proof found after
        the candidate travels on. A proof longer than the depth limit is not taken: Check
        decides that candidate, and runs into the limit as it always did."""
        if pair not in self.relevant:
            return
        known = self.found.setdefault(pair, set())
        sure = self.proven.setdefault(pair, set())
        new = {i for i in ids if i not in known}
        newly_proven: set[str] = set()
        if level < self.state.limits.max_depth:
            newly_proven = {i for i in proven if i not in sure}
        known |= new
        sure |= newly_proven
        if new or newly_proven:
            self.queue.append((pair, frozenset(new | newly_proven), level))

    def add_proofs(
        self, target: Pair, proofs: Proofs, ids: Iterable[str], proven: set[str], level: int
    ) -> None:
        """Candidates `ids` of `target` reached through a leaf with `proofs`; `proven`:
        those reached by a proven source over a plain relationship."""
        if frozenset() in proofs:
            self.add(target, ids, proven, level)
            return
        self.add(target, ids, level=level)
        if target == self.target and proven and level < self.state.limits.max_depth:
            for guards in proofs & self.guards:
                self.guarded.setdefault(guards, set()).update(proven)

    def result(self) -> Candidates:
        ids = self.found.get(self.target, set())
        proven = set(self.proven.get(self.target, ()))
        for guards, sure in self.guarded.items():
            blocked: set[str] = set()
            for pair in guards:
                blocked |= self.found.get(pair, set())
            proven |= sure - blocked
        return Candidates(frozenset(ids), frozenset(proven))


class WalkCache(Protocol):
    """Where walks are kept (cache.lru.DecisionCache fits): `get` answers only before the
    entry's `valid_until`."""

    def get(self, key: Hashable, now: datetime) -> Candidates | None: ...

    def put(
        self, key: Hashable, value: Candidates, valid_until: datetime | None = None
    ) -> None: ...


async def candidate_resources(
    state: RequestState,
    index: ReverseIndex,
    target: Pair,
    subject: SubjectRef,
    context: FrozenContext = EMPTY_CONTEXT,
) -> Candidates:
    """The walk is bounded as one decision (`RequestState.walked`): each candidate whose
    relationships it reads along an edge is a subproblem, a candidate named by more than
    AUTHZ_MAX_FANOUT relationships in one step is refused, as Check refuses a step that
    leads on to as many, and it stops at the deadline, yielding to the event loop as it
    goes. The subject's own relationships (a subject set's too) lead on from no step of
    Check's (Check reads them for one resource at a time), so they are not a fan-out."""
    state.begin_decision()
    walk = _Walk(state, index, target)

    # Seeds: relationships naming the subject (or its wildcard) directly. A relation is
    # a union of its relationships, so a plain one the schema allows proves it.
    kind = (subject.type, subject.relation)
    ids = (subject.id,) if subject.relation else (subject.id, WILDCARD)
    for pair in index.direct.get(kind, ()):
        if pair in walk.relevant:
            flt = RelationshipFilter(pair[0], None, pair[1], subject.type, ids, subject.relation)
            rels = (await state.reads.read(flt)).live
            plain = index.plain[pair]
            for part in _slices(rels):
                walk.add(
                    pair,
                    (rel.resource.id for rel in part),
                    (r.resource.id for r in part if r.caveat is None and plain_kind(r) in plain),
                )
                await state.walked(0, len(part))
    if subject.relation:
        walk.own = (kind, subject.id)
        walk.add(kind, (subject.id,), (subject.id,))  # the subject set itself
    else:
        for pair in index.selfs.get(subject.type, ()):
            proofs = index.self_proofs.get(pair, frozenset())
            walk.add_proofs(pair, proofs, (subject.id,), {subject.id}, 0)
    for source in state.grant_sources:  # role bindings reaching the subject: unproven
        granted = await source.resource_candidates(state, walk.relevant, subject, context)
        for pair, granted_ids in granted.items():
            walk.add(pair, granted_ids)

    while walk.queue:
        pair, delta, level = walk.queue.popleft()
        for edge in index.consumers.get(pair, ()):
            if edge.target in walk.relevant:
                await _follow(walk, edge, delta, level + 1)
    return walk.result()


def _slices(rels: Sequence[Relationship]) -> Iterator[Sequence[Relationship]]:
    """`rels` in parts small enough to handle between two yields of the walk."""
    for start in range(0, len(rels), _SLICE):
        yield rels[start : start + _SLICE]


async def _follow(walk: _Walk, edge: Edge, delta: frozenset[str], level: int) -> None:
    state = walk.state
    proofs = walk.index.proofs.get(edge, frozenset())
    sure = walk.proven.get(edge.source, set())
    if edge.kind == "ref":
        walk.add_proofs(edge.target, proofs, delta, set(delta & sure) if proofs else set(), level)
        await state.walked(0, len(delta))
        return
    # The relation whose relationships carry the step: the target itself for a subject
    # set, the tupleset relation for an arrow. Check ignores those it does not allow.
    plain = walk.index.plain.get(
        edge.target if edge.kind == "subject_set" else (edge.target[0], edge.relation),
        frozenset(),
    )
    ordered = sorted(delta)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        await state.walked(len(chunk), 0)  # before the read: none once the deadline passed
        flt = RelationshipFilter(
            edge.target[0], None, edge.relation, edge.source[0], tuple(chunk), edge.subject_relation
        )
        rels = (await state.reads.read(flt)).live
        _check_fanout(walk, edge, rels)
        for part in _slices(rels):
            proven = set()
            if proofs:
                proven = {
                    r.resource.id
                    for r in part
                    if r.subject.id in sure and r.caveat is None and plain_kind(r) in plain
                }
            walk.add_proofs(edge.target, proofs, (rel.resource.id for rel in part), proven, level)
            await state.walked(0, len(part))


def _check_fanout(walk: _Walk, edge: Edge, rels: Sequence[Relationship]) -> None:
    """Refuse a candidate named by more of `rels` than the fan-out limit, before any of
    them is followed (only a read of more than the limit can hold one)."""
    state = walk.state
    limit = state.limits.max_fanout
    if len(rels) <= limit:
        return
    counts = Counter(r.subject.id for r in rels)
    if walk.own is not None and walk.own[0] == edge.source:
        del counts[walk.own[1]]
    worst, count = max(counts.items(), key=lambda item: item[1], default=("", 0))
    if count > limit:
        sets = f"#{edge.subject_relation}" if edge.subject_relation else ""
        where = f"{edge.target[0]}:*#{edge.relation}@{edge.source[0]}:{worst}{sets}"
        raise state.fanout_error(where, count)


async def lookup_resource_pages(
    state: RequestState,
    *,
    index: ReverseIndex,
    resource_type: str,
    permission: str,
    subject: SubjectRef,
    context: FrozenContext,
    after: str | None,
    limit: int | None,
    walks: WalkCache | None = None,
) -> AsyncIterator[list[ResourceResult]]:
    """The results in pages of up to `_PAGE`: a caller that bounds each step of the
    stream (the service, by the call's deadline) pays for that once per page."""
    found = await _candidates(state, index, (resource_type, permission), subject, context, walks)
    page: list[ResourceResult] = []
    sent = 0
    for resource_id in sorted(found.ids):
        if after is not None and resource_id <= after:
            continue
        if limit is not None and sent >= limit:
            break
        if resource_id in found.proven:
            page.append(ResourceResult(resource_id, Decision.ALLOWED, ()))
        else:
            item = CheckItem(ObjectRef(resource_type, resource_id), permission, subject, context)
            result = await decide(state, item)
            if result.decision is Decision.DENIED:
                continue
            page.append(ResourceResult(resource_id, result.decision, result.missing_context))
        sent += 1
        if len(page) >= _PAGE:
            yield page
            page = []
    if page:
        yield page


async def _candidates(
    state: RequestState,
    index: ReverseIndex,
    target: Pair,
    subject: SubjectRef,
    context: FrozenContext,
    walks: WalkCache | None,
) -> Candidates:
    """`candidate_resources`, through `walks` when the walk may be shared (module doc)."""
    if walks is None or state.volatile:
        return await candidate_resources(state, index, target, subject, context)
    snap = state.snapshot
    key = (
        "lookup_resources",
        snap.tenant,
        snap.revision,
        snap.schema.version,
        *target,
        subject.type,
        subject.id,
        subject.relation,
        context.canonical,
        state.limits.max_depth,
    )
    found = walks.get(key, snap.now) if snap.shared_cache else None
    if found is None:
        found = await candidate_resources(state, index, target, subject, context)
        if len(found.ids) >= _KEPT_WALK:
            walks.put(key, found, state.reads.earliest_expiry())
    return found
