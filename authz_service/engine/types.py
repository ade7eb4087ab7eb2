"""The engine's public values: what a caller passes in and gets back.

All frozen and hashable, so that a `CheckItem` can be a cache key and a `CheckResult` a
cached value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from authz_service.model import EMPTY_CONTEXT, FrozenContext, ObjectRef, Revision, SubjectRef
from authz_service.schema.compiled import CompiledSchema

__all__ = [
    "BindingRef",
    "CheckItem",
    "CheckResult",
    "Decision",
    "ExcludedSubject",
    "ExplainNode",
    "Limits",
    "ResourceResult",
    "Snapshot",
    "SubjectResult",
]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a decision is made against.

    `now` judges relationship expiration. It is explicit (never read from the clock inside
    the engine) so that replaying a decision with the same snapshot gives the same answer.
    """

    tenant: str
    revision: Revision
    schema: CompiledSchema
    now: datetime
    shared_cache: bool = True
    """False for fully consistent reads: subproblems are evaluated afresh, not taken from
    (or added to) the cross-request cache."""


class Decision(Enum):
    ALLOWED = "ALLOWED"
    DENIED = "DENIED"
    CONDITIONAL = "CONDITIONAL"  # a caveat needs context the caller did not send


@dataclass(frozen=True, slots=True)
class Limits:
    """Evaluation limits. Hitting any of them is an error, never an answer.

    `max_depth` bounds nested subproblems (nested groups, arrows, rewrites); `max_fanout`
    bounds the relationships one node expands into further subproblems;
    `max_subproblems` bounds the subproblems evaluated for one decision (answers
    reused within the request are not counted again); `max_caveat_cost` bounds one caveat
    evaluation (see `authz_service.caveats.cost`); `deadline` is a `time.monotonic()`
    instant (the call's deadline, `authz_service.deadline`, applies as well).
    """

    max_depth: int = 50
    max_fanout: int = 10_000
    deadline: float | None = None
    max_subproblems: int = 100_000
    max_caveat_cost: int = 1_000_000


@dataclass(frozen=True, slots=True)
class BindingRef:
    """The role binding a `grant` explanation node names. `scope` is `type:id`, or empty
    for a tenant-wide binding; `subject` is the binding's subject in text form."""

    binding_id: str
    role: str
    subject: str
    scope: str = ""


@dataclass(frozen=True, slots=True)
class ExplainNode:
    """One step of an explanation.

    `kind` is one of: `permission`, `relation` (a relation or permission of an object),
    `union`, `intersection`, `exclusion`, `arrow` (`rel->perm`, `rel.any(perm)`),
    `arrow_all` (`rel.all(perm)`), `nil`, `self`, `alias` (the subject is this very
    userset), `relationship` (a stored or contextual relationship; `caveat` names its
    caveat), `cycle` (cut: already being evaluated higher up), `grant` (a grant source;
    `binding` names the role binding when there is one), and, added by the service layer,
    `tenant` (a suspended tenant), `lifecycle` (a suspended or deprovisioned subject),
    `impersonation`, `delegation` (a non-delegable permission) and `agents` (a delegated
    check; its children, `principal` for the subject and then one `agent` per agent, name
    in `subject` the member of the chain they were evaluated for). The API sends each as
    an ExplanationNode.Kind (`api/explain.py`).
    `object`/`relation` locate the step (`document:x`, `view`); for expression steps
    (`explain.EXPRESSION_KINDS`) `relation` holds the expression text. `reason` says why a step failed or is
    conditional. Children of an ALLOWED step are its proof; of a DENIED step, the branches
    that failed. On a `relationship` whose caveat was evaluated, `caveat_result` and
    `caveat_missing` are the caveat's own outcome, which `result` is not when the step
    went on through a subject set or an arrow.
    """

    kind: str
    object: str
    relation: str
    result: Decision
    relationship: str | None = None
    caveat: str | None = None
    reason: str | None = None
    children: tuple[ExplainNode, ...] = ()
    binding: BindingRef | None = None
    subject: str | None = None
    caveat_result: Decision | None = None
    caveat_missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """`cacheable` is False when the answer depended on something outside the request key
    (request-only relationships, a cycle cut). `valid_until` is the earliest expiration
    among the live relationships consulted: the answer may change at that instant."""

    decision: Decision
    missing_context: tuple[str, ...] = ()
    explanation: ExplainNode | None = None
    cacheable: bool = True
    valid_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class CheckItem:
    resource: ObjectRef
    permission: str
    subject: SubjectRef
    context: FrozenContext = EMPTY_CONTEXT


@dataclass(frozen=True, slots=True)
class ResourceResult:
    resource_id: str
    decision: Decision
    missing_context: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExcludedSubject:
    """A subject that a wildcard result does not cover, with its own decision: DENIED, or
    CONDITIONAL when it is excluded only if its missing context says so."""

    subject_id: str
    decision: Decision
    missing_context: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubjectResult:
    """A wildcard result has `subject_id == "*"`: every subject of the type not listed
    individually gets `decision`, except `excluded_subjects`, which get their own."""

    subject_id: str
    decision: Decision
    missing_context: tuple[str, ...]
    excluded_subjects: tuple[ExcludedSubject, ...] = ()

    @property
    def excluded_subject_ids(self) -> tuple[str, ...]:
        return tuple(e.subject_id for e in self.excluded_subjects)
