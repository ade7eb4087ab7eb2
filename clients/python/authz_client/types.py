"""Values the client takes and returns: frozen dataclasses, no protobuf needed to use them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from authz_client._stubs import core_pb2
from authz_client.errors import RpcError
from authz_client.types_admin import RoleBinding

__all__ = [
    "CaveatEvaluation",
    "CheckItem",
    "CheckResult",
    "Consistency",
    "Decision",
    "DeleteResult",
    "ExcludedSubject",
    "ExplainResult",
    "Explanation",
    "ExplanationNode",
    "FoundResource",
    "FoundSubject",
    "PermissionResult",
    "PermissionsResult",
    "RelationshipChange",
    "RelationshipFilter",
    "SchemaVersion",
    "SchemaWriteResult",
    "StoredRelationship",
    "WatchEvent",
    "WriteResult",
]


class Decision(enum.Enum):
    """The answer to a check. Only ALLOWED allows; treat every other value as a denial."""

    UNSPECIFIED = core_pb2.DECISION_UNSPECIFIED
    ALLOWED = core_pb2.DECISION_ALLOWED
    DENIED = core_pb2.DECISION_DENIED
    CONDITIONAL = core_pb2.DECISION_CONDITIONAL

    @classmethod
    def from_proto(cls, value: int) -> Decision:
        # An enum value newer than this client is not a decision we understand: deny.
        try:
            return cls(value)
        except ValueError:
            return cls.UNSPECIFIED


ConsistencyMode = Literal[
    "minimize_latency", "at_least_as_fresh", "at_exact_snapshot", "fully_consistent"
]


@dataclass(frozen=True, slots=True)
class Consistency:
    """How fresh a read must be. Build one with the class methods.

    A read without an explicit Consistency uses `at_least_as_fresh` of the last write this
    client made in the tenant (read-your-writes), or the server's default otherwise.
    """

    mode: ConsistencyMode
    token: str | None = None

    def __post_init__(self) -> None:
        needs_token = self.mode in ("at_least_as_fresh", "at_exact_snapshot")
        if needs_token != (self.token is not None):
            raise ValueError(
                f"consistency `{self.mode}` takes {'a' if needs_token else 'no'} token"
            )

    @classmethod
    def minimize_latency(cls) -> Consistency:
        return cls("minimize_latency")

    @classmethod
    def fully_consistent(cls) -> Consistency:
        return cls("fully_consistent")

    @classmethod
    def at_least_as_fresh(cls, token: str) -> Consistency:
        return cls("at_least_as_fresh", token)

    @classmethod
    def at_exact_snapshot(cls, token: str) -> Consistency:
        return cls("at_exact_snapshot", token)

    def to_proto(self) -> core_pb2.Consistency:
        if self.mode == "minimize_latency":
            return core_pb2.Consistency(minimize_latency=True)
        if self.mode == "fully_consistent":
            return core_pb2.Consistency(fully_consistent=True)
        token = core_pb2.ConsistencyToken(token=self.token or "")
        if self.mode == "at_least_as_fresh":
            return core_pb2.Consistency(at_least_as_fresh=token)
        return core_pb2.Consistency(at_exact_snapshot=token)


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One question of a bulk check, in text forms."""

    resource: str
    permission: str
    subject: str
    context: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The decision of a check (or of one bulk item).

    `token` names the revision it was decided at. For a bulk item that could not be
    decided, `error` holds why and `decision` is UNSPECIFIED (so `allowed` is False).
    `subject`, `actor`, `reason` and `agents` are the server's echo of a `check` request,
    in text form (empty when unset); empty on `check_bulk` results, whose answer has none.
    """

    decision: Decision
    missing_context: tuple[str, ...]
    decision_id: str
    token: str
    error: RpcError | None = None
    # When the call asked for it (`with_explanation=True`), and on a denial by a rule of the
    # service (a suspended subject, a refused impersonation or delegation, ...) without it.
    explanation: Explanation | None = None
    subject: str = ""
    actor: str = ""
    reason: str = ""
    agents: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


@dataclass(frozen=True, slots=True)
class PermissionResult:
    """The decision for one permission of a ListPermissions answer."""

    permission: str
    decision: Decision
    missing_context: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


@dataclass(frozen=True, slots=True)
class PermissionsResult:
    """Every permission of a resource's definition, decided for one subject."""

    permissions: tuple[PermissionResult, ...]
    decision_id: str
    token: str

    @property
    def allowed(self) -> frozenset[str]:
        """The names of the permissions that are ALLOWED."""
        return frozenset(p.permission for p in self.permissions if p.allowed)


@dataclass(frozen=True, slots=True)
class FoundResource:
    """One resource found by lookup_resources (ALLOWED or CONDITIONAL)."""

    resource_id: str
    decision: Decision
    missing_context: tuple[str, ...]
    token: str


@dataclass(frozen=True, slots=True)
class ExcludedSubject:
    """A subject a wildcard result does not cover, with its own decision: DENIED, or
    CONDITIONAL (excluded only under a condition, named by `missing_context`)."""

    subject_id: str
    decision: Decision
    missing_context: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FoundSubject:
    """One subject found by lookup_subjects; `*` with exclusions for a wildcard.
    `excluded_subject_ids` are the ids of `excluded_subjects`."""

    subject_id: str
    decision: Decision
    missing_context: tuple[str, ...]
    excluded_subject_ids: tuple[str, ...]
    token: str
    excluded_subjects: tuple[ExcludedSubject, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredRelationship:
    """One relationship read, in text form and as the message."""

    text: str
    relationship: core_pb2.Relationship = field(compare=False, hash=False)
    token: str


@dataclass(frozen=True, slots=True)
class RelationshipFilter:
    """Selects relationships; unset fields match anything (see core.proto)."""

    resource_type: str = ""
    resource_ids: tuple[str, ...] = ()
    relation: str = ""
    subject_type: str = ""
    subject_ids: tuple[str, ...] = ()
    # None matches any subject relation; "" matches plain objects only.
    subject_relation: str | None = None

    def to_proto(self) -> core_pb2.RelationshipFilter:
        message = core_pb2.RelationshipFilter(
            resource_type=self.resource_type,
            resource_ids=self.resource_ids,
            relation=self.relation,
            subject_type=self.subject_type,
            subject_ids=self.subject_ids,
        )
        if self.subject_relation is not None:
            message.subject_relation = self.subject_relation
        return message


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A committed write. `replayed` is True when the idempotency key had been applied."""

    token: str
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """A committed delete by filter."""

    token: str
    deleted_count: int


@dataclass(frozen=True, slots=True)
class SchemaWriteResult:
    """The schema version written; `token` is accepted by every tenant (schema freshness)."""

    schema_version: str
    token: str
    orphaned: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One schema version as the server prints it."""

    schema: str
    schema_version: str
    create_time: datetime | None
    current: bool


@dataclass(frozen=True, slots=True)
class CaveatEvaluation:
    """A caveat evaluated during a decision: its context and its result."""

    name: str
    context: dict[str, Any] = field(hash=False)
    result: Decision
    missing_context: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExplanationNode:
    """One evaluation step. `kind` is `permission`, `relation`, `union`, `intersection`,
    `exclusion`, `arrow`, `arrow_all`, `nil`, `relationship`, `role_binding`,
    `impersonation`, `delegation` or `cycle` (see ExplanationNode.Kind in core.proto); the
    text fields are empty when they do not apply to the kind: `relation` is a relation or
    permission name, `expression` the schema expression an operator step evaluated, and
    `reason` why a step is not allowed, in words (for reading, not for deciding).
    `same_as` names the `node_id` of an identical step shown once elsewhere."""

    kind: str
    object: str
    relation: str
    result: Decision
    expression: str
    subject: str
    relationship: str
    contextual: bool
    caveat: CaveatEvaluation | None
    binding: RoleBinding | None
    children: tuple[ExplanationNode, ...]
    node_id: int
    same_as: int
    truncated: bool
    # Last, with a default: added after the others, so that building one positionally (in
    # a caller's tests, say) keeps working.
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Explanation:
    """The evaluation tree of a decision. `deny_reason` (for example `no_grant`,
    `excluded`, `subject_suspended`, `non_delegable`) says why a denial is one."""

    root: ExplanationNode | None
    deny_reason: str
    truncated: bool


@dataclass(frozen=True, slots=True)
class ExplainResult:
    """A decision with every evaluation step behind it (see `explain`)."""

    decision: Decision
    missing_context: tuple[str, ...]
    explanation: Explanation
    token: str
    decision_id: str

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


@dataclass(frozen=True, slots=True)
class RelationshipChange:
    """One change streamed by `watch`: `operation` is `touch` or `delete`."""

    operation: str
    text: str
    relationship: core_pb2.Relationship = field(compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """The changes of one revision; `token` is where a resumed watch continues from.

    A revision too large for one response (more than 1,000 changes or 1 MiB: a bulk load,
    a delete by filter) comes as several events in a row: all but the last are
    `partial`, and their `token` is still the revision complete before them, so a watch
    resumed inside the revision receives it again from its first change."""

    changes: tuple[RelationshipChange, ...]
    token: str
    partial: bool = False
