"""Decision-log entries -> the AuditService's DecisionRecord message."""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from authz_service.api import convert
from authz_service.api.explain import explanation_to_proto
from authz_service.api.gen.authz.v1 import audit_pb2, core_pb2
from authz_service.decisionlog import Decision, DecisionKind, LogEntry, Problem
from authz_service.engine import CheckResult, ExplainNode
from authz_service.engine import Decision as EngineDecision
from authz_service.errors import InvalidArgument
from authz_service.model import parse_subject
from authz_service.service.reasons import has_tree, node_from_json
from authz_service.service.replay import ReplayResult, ReplayStatus

__all__ = ["KINDS", "PROBLEM_KINDS", "record_to_proto", "replayed_to_proto"]

KINDS: Final = {
    DecisionKind.CHECK: audit_pb2.DECISION_KIND_CHECK,
    DecisionKind.CHECK_BULK_ITEM: audit_pb2.DECISION_KIND_CHECK_BULK_ITEM,
    DecisionKind.LIST_PERMISSIONS: audit_pb2.DECISION_KIND_LIST_PERMISSIONS,
    DecisionKind.LOOKUP_RESOURCES: audit_pb2.DECISION_KIND_LOOKUP_RESOURCES,
    DecisionKind.LOOKUP_SUBJECTS: audit_pb2.DECISION_KIND_LOOKUP_SUBJECTS,
    DecisionKind.ADMIN: audit_pb2.DECISION_KIND_ADMIN,
}

# The API says ALLOWED for an administrative change that was applied.
_DECISIONS: Final = {
    Decision.ALLOWED: core_pb2.DECISION_ALLOWED,
    Decision.DENIED: core_pb2.DECISION_DENIED,
    Decision.CONDITIONAL: core_pb2.DECISION_CONDITIONAL,
    Decision.APPLIED: core_pb2.DECISION_ALLOWED,
}

_OUTCOMES: Final = {
    ReplayStatus.MATCH: audit_pb2.REPLAY_OUTCOME_MATCH,
    ReplayStatus.DIFFERS: audit_pb2.REPLAY_OUTCOME_DIFFERS,
    ReplayStatus.CANNOT_REPLAY: audit_pb2.REPLAY_OUTCOME_CANNOT_REPLAY,
}

_Kind = audit_pb2.LogProblem
PROBLEM_KINDS: Final = {
    Problem.MALFORMED: _Kind.KIND_MALFORMED,
    Problem.HASH_MISMATCH: _Kind.KIND_CHAIN_BROKEN,
    Problem.BROKEN_LINK: _Kind.KIND_CHAIN_BROKEN,
    Problem.WRONG_STREAM: _Kind.KIND_CHAIN_BROKEN,
    Problem.CHECKPOINT_MISMATCH: _Kind.KIND_CHAIN_BROKEN,
    Problem.MISSING_RECORD: _Kind.KIND_SEQUENCE_BROKEN,
    Problem.REORDERED: _Kind.KIND_SEQUENCE_BROKEN,
    Problem.DUPLICATE_SEQ: _Kind.KIND_SEQUENCE_BROKEN,
    Problem.MISSING_SEGMENT: _Kind.KIND_SEQUENCE_BROKEN,
    Problem.TRUNCATED: _Kind.KIND_TRUNCATED,
    Problem.BAD_SIGNATURE: _Kind.KIND_BAD_SIGNATURE,
    Problem.BAD_CHECKPOINT: _Kind.KIND_MALFORMED,
    Problem.UNSIGNED: _Kind.KIND_UNSIGNED,
    Problem.UNEXPECTED_FILE: _Kind.KIND_MALFORMED,  # the log's layout is not the writer's
}


def _object(text: str) -> core_pb2.ObjectReference | None:
    """Records hold references as text; lookups log `type:*`, admin records may name a
    credential. Anything that is not `type:id` is left out rather than guessed."""
    kind, sep, ident = text.partition(":")
    if not (sep and kind and ident):
        return None
    return core_pb2.ObjectReference(object_type=kind, object_id=ident)


def _subject(text: str) -> core_pb2.SubjectReference | None:
    base, _, relation = text.partition("#")
    obj = _object(base)
    if obj is None:
        return None
    return core_pb2.SubjectReference(object=obj, relation="" if relation == "..." else relation)


def _rooted(node: ExplainNode, subject: str) -> ExplainNode:
    """The recorded tree with its root naming the record's subject, as core.proto promises:
    records written before the service set it there lack it."""
    if node.subject is not None:
        return node
    try:
        parse_subject(subject)
    except InvalidArgument:
        return node  # not a subject the API can send; the record's own field shows it
    return replace(node, subject=subject)


def _explanation(
    decision: Decision, explanation: object, subject: str
) -> core_pb2.Explanation | None:
    """The recorded tree, or the missing context of a CONDITIONAL decision; nothing when
    only the decision was recorded (the deny reason is not guessed)."""
    if decision is Decision.APPLIED or not isinstance(explanation, dict):
        return None
    missing = tuple(str(m) for m in explanation.get("missing_context", ()))
    if has_tree(explanation):
        root = _rooted(node_from_json(explanation), subject)
        result = CheckResult(EngineDecision(decision.value), missing, explanation=root)
    elif missing:
        result = CheckResult(EngineDecision.CONDITIONAL, missing)
    else:
        return None
    return explanation_to_proto(result)


def record_to_proto(entry: LogEntry) -> audit_pb2.DecisionRecord:
    record = entry.record
    data = record.to_dict()
    msg = audit_pb2.DecisionRecord(
        decision_id=record.decision_id,
        tenant=record.tenant,
        kind=KINDS[record.kind],
        reason=record.reason or "",
        action=record.action,
        redacted=record.redacted,
        contextual_relationships_digest=record.contextual_relationships_digest or "",
        decision=_DECISIONS[record.decision],
        decided_at=convert.token(record.tenant, record.revision),
        schema_version=record.schema_version,
        cache_hit=record.cache_hit,
        server_version=record.server_version,
        credential_id=record.credential_id or "",
        result_count=record.result_count or 0,
        result_digest=record.result_digest or "",
        sequence=entry.seq,
        previous_hash=entry.prev_hash,
        hash=entry.hash,
    )
    msg.time.FromDatetime(record.time)
    msg.latency.FromMicroseconds(record.latency_us)
    for name, text in (("subject", record.subject), ("actor", record.actor or "")):
        subject = _subject(text)
        if subject is not None:
            getattr(msg, name).CopyFrom(subject)
    resource = _object(record.resource)
    if resource is not None:
        msg.resource.CopyFrom(resource)
    if data["context"]:
        msg.context.update(data["context"])
    if data["details"]:
        msg.details.update(data["details"])
    explanation = _explanation(record.decision, data["explanation"], record.subject)
    if explanation is not None:
        msg.explanation.CopyFrom(explanation)
    return msg


def replayed_to_proto(result: ReplayResult) -> audit_pb2.ReplayedDecision:
    record = result.record
    msg = audit_pb2.ReplayedDecision(
        decision_id=record.decision_id,
        action=record.action,
        outcome=_OUTCOMES[result.status],
        recorded_decision=_DECISIONS[Decision(result.original.decision)],
        recorded_reason=result.original.reason,
        problem=result.problem or "",
        decided_at=convert.token(record.tenant, record.revision),
        schema_version=result.schema_version,
    )
    msg.time.FromDatetime(record.time)
    subject = _subject(record.subject)
    if subject is not None:
        msg.subject.CopyFrom(subject)
    resource = _object(record.resource)
    if resource is not None:
        msg.resource.CopyFrom(resource)
    if result.replayed is not None:
        msg.replayed_decision = _DECISIONS[Decision(result.replayed.decision)]
        msg.replayed_reason = result.replayed.reason
    return msg
