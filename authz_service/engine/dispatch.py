"""The seam every subproblem crosses: `Dispatcher`.

A subproblem is "does `subject` have `relation` on `resource`, given `context`, at this
snapshot". The evaluator never recurses directly: each nested question is dispatched, so
a decorator (the cross-request cache) can answer it instead. The chain for one request is

    per-request memo + cycle detection + limits   (RequestState, always first)
      -> dispatcher_wrapper(...)                    (e.g. the cache; skipped for explain)
        -> LocalDispatcher (check.py)               (evaluates one node, dispatching children)

A cache wrapping the local dispatcher must key on `Subproblem.cache_key`, store only
results whose `cacheable` is true, and serve a stored result only for `snapshot.now`
before its `valid_until` (and not before the `now` it was computed at).

`EvaluationState` is what a node's evaluator may use of its request; `RequestState`
(request.py) is the one implementation. It is a protocol here so that this module, the
grant sources and the request state depend on each other in one direction only.

Grant sources (`GrantSource`) are extra sources of grants, OR-ed into every permission
and relation the engine evaluates. Role bindings plug in here
(`authz_service.tenancy.BindingGrants`): a source answers "does the subject of this
subproblem hold its relation or permission on its resource by some grant outside the
relationship graph". It is consulted wherever a member of an object is evaluated,
including objects reached through arrows and subject sets, so a grant on a folder flows
to its documents exactly as the schema's arrows say. A source reads through the request's
reads (at the snapshot's revision, request-only relationships included, memoized per
request) and may dispatch nested subproblems (`req.request.dispatch(req.child(obj,
relation))`), which keeps the subject and shares the memo, the depth limit and cycle
detection. LookupResources and LookupSubjects find candidates by walking relationships;
the two candidate hooks let a source add the candidates its grants create. Candidates may
be a superset: every one is decided by Check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from authz_service.engine.caveat_eval import CaveatEvaluator
from authz_service.engine.reads import Reads
from authz_service.engine.tristate import Tri
from authz_service.engine.types import ExplainNode, Limits, Snapshot
from authz_service.model import FrozenContext, ObjectRef, SubjectRef

__all__ = [
    "Dispatcher",
    "EvaluationState",
    "GrantSource",
    "Pair",
    "SubResult",
    "Subproblem",
    "SubproblemKey",
]

SubproblemKey = tuple[str, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class Subproblem:
    """One node of the check graph. Only `cache_key` identifies it: `depth` and `request`
    (the per-request state: memo, path, limits, request-only relationships) are how it is
    being asked, not what is asked."""

    snapshot: Snapshot
    context: FrozenContext
    resource: ObjectRef
    relation: str
    subject: SubjectRef
    depth: int = field(compare=False)
    request: EvaluationState = field(compare=False, repr=False)

    @property
    def key(self) -> SubproblemKey:
        """Identity within one request (one snapshot), as plain strings: hashed often."""
        r, s = self.resource, self.subject
        return (r.type, r.id, self.relation, s.type, s.id, s.relation, self.context.canonical)

    @property
    def cache_key(self) -> tuple[object, ...]:
        """Identity across requests: everything that changes the answer except `now`,
        which `SubResult.valid_until` accounts for. Strings and ints only: hashed in C,
        and a tuple of them is not tracked by the cycle collector once it survives a
        collection (a cache of hundreds of thousands of keys holding model objects made
        every full collection walk them all)."""
        snap = self.snapshot
        return (snap.tenant, snap.revision, snap.schema.version, *self.key)

    def child(self, resource: ObjectRef, relation: str) -> Subproblem:
        return Subproblem(
            self.snapshot,
            self.context,
            resource,
            relation,
            self.subject,
            self.depth + 1,
            self.request,
        )

    def label(self) -> str:
        return f"{self.resource}#{self.relation}"


@dataclass(frozen=True, slots=True)
class SubResult:
    """The answer to a subproblem, with what a cache needs to reuse it.

    - `valid_until`: earliest expiration among the live relationships consulted;
    - `volatile`: depends on something outside the cache key (request-only relationships,
      or a grant source that said so);
    - `cycle_index`: set while the answer relies on an evaluation that is still open
      higher up the request (a cycle in the data, see `request.py`). Such an answer is
      an approximation until that evaluation settles, so it is never cached.
    """

    value: Tri
    valid_until: datetime | None = None
    volatile: bool = False
    cycle_index: int | None = None
    explanation: ExplainNode | None = None

    @property
    def cacheable(self) -> bool:
        return not self.volatile and self.cycle_index is None


@runtime_checkable
class Dispatcher(Protocol):
    """Answers one subproblem. Implementations are stateless across requests except for
    caches keyed as described in the module docstring."""

    async def dispatch(self, req: Subproblem) -> SubResult: ...


Pair = tuple[str, str]
"""(type, relation or permission)."""


class EvaluationState(Protocol):
    """What evaluating a subproblem may use of its request (see `RequestState`)."""

    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def reads(self) -> Reads: ...
    @property
    def caveats(self) -> CaveatEvaluator: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def explain(self) -> bool: ...
    @property
    def root_label(self) -> str: ...
    @property
    def grant_sources(self) -> Sequence[GrantSource]: ...

    async def dispatch(self, req: Subproblem) -> SubResult: ...

    def check_deadline(self) -> None: ...

    def check_fanout(self, req: Subproblem, count: int, what: str) -> None: ...


@runtime_checkable
class GrantSource(Protocol):
    """An extra source of grants (see the module docstring)."""

    async def grants(self, req: Subproblem) -> SubResult:
        """The grant's three-valued answer for `req`. Set `volatile=True` on the result
        if it depends on anything not fixed by (tenant, revision, schema version, context),
        and `valid_until` if it lapses at a known instant. An explanation node of kind
        `grant` is used as is; any other is wrapped in one."""
        ...

    async def resource_candidates(
        self,
        state: EvaluationState,
        pairs: frozenset[Pair],
        subject: SubjectRef,
        context: FrozenContext,
    ) -> Mapping[Pair, Iterable[str]]:
        """For LookupResources: ids of objects of type `pair[0]` on which `subject` may
        hold `pair[1]` by a grant, for the pairs of `pairs` this source grants."""
        ...

    async def subject_candidates(
        self, state: EvaluationState, resource: ObjectRef, name: str
    ) -> Sequence[SubjectRef]:
        """For LookupSubjects: the subjects (objects, subject sets or wildcards) that may
        hold `name` on `resource` by a grant; subject sets are expanded by the caller."""
        ...
