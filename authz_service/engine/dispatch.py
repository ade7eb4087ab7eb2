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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from authz_service.engine.tristate import Tri
from authz_service.engine.types import ExplainNode, Snapshot
from authz_service.model import FrozenContext, ObjectRef, SubjectRef

if TYPE_CHECKING:
    from authz_service.engine.request import RequestState

__all__ = ["Dispatcher", "SubResult", "Subproblem", "SubproblemKey"]

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
    request: RequestState = field(compare=False, repr=False)

    @property
    def key(self) -> SubproblemKey:
        """Identity within one request (one snapshot), as plain strings: hashed often."""
        r, s = self.resource, self.subject
        return (r.type, r.id, self.relation, s.type, s.id, s.relation, self.context.canonical)

    @property
    def cache_key(self) -> tuple[object, ...]:
        """Identity across requests: everything that changes the answer except `now`,
        which `SubResult.valid_until` accounts for."""
        snap = self.snapshot
        return (
            snap.tenant,
            snap.revision,
            snap.schema.version,
            self.resource,
            self.relation,
            self.subject,
            self.context,
        )

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
