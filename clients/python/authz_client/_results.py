"""Responses of the explanation, watch, administration and audit calls, converted into the
frozen dataclasses of `types`, `types_admin` and `types_audit`.

Protobuf enums become lowercase names without their prefix; a value newer than this client
becomes `unspecified` (and a Decision UNSPECIFIED, which never allows).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from authz_client import text
from authz_client._stubs import (
    audit_pb2,
    core_pb2,
    keys_pb2,
    permissions_pb2,
    relationships_pb2,
    tenancy_pb2,
    tenants_pb2,
)
from authz_client.types import (
    CaveatEvaluation,
    Decision,
    ExplainResult,
    Explanation,
    ExplanationNode,
    RelationshipChange,
    WatchEvent,
)
from authz_client.types_admin import (
    ApiKey,
    GrantReachResult,
    ReachedResource,
    Role,
    RoleBinding,
    RolePermission,
    ScimDrift,
    ScimSync,
    ScimSyncStatus,
    SubjectStatus,
    Tenant,
)
from authz_client.types_audit import (
    DecisionRecord,
    LogProblem,
    LogVerification,
    ReplayedDecision,
    ReplaySummary,
)

__all__ = [
    "api_key",
    "binding",
    "decision_record",
    "enum_name",
    "explain_result",
    "explanation",
    "grant_reach",
    "log_verification",
    "role",
    "scim_drift",
    "scim_sync",
    "subject_status",
    "tenant",
    "time",
    "watch_event",
]


def enum_name(name_of: Callable[[Any], str], value: int, prefix: str) -> str:
    """`name_of` is the enum's `Name`, e.g. `core_pb2.DenyReason.Name`."""
    try:
        name = name_of(value)
    except ValueError:
        return "unspecified"
    return name.removeprefix(prefix).lower()


def time(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    return stamp.ToDatetime(tzinfo=UTC)


def _duration(message: Any, name: str) -> timedelta | None:
    if not message.HasField(name):
        return None
    value: duration_pb2.Duration = getattr(message, name)
    return value.ToTimedelta()


def _dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)


def _object(message: Any, name: str) -> str:
    return text.format_object(getattr(message, name)) if message.HasField(name) else ""


def _subject(message: Any, name: str) -> str:
    return text.format_subject(getattr(message, name)) if message.HasField(name) else ""


def _relationship(message: Any, name: str) -> str:
    return text.format_relationship(getattr(message, name)) if message.HasField(name) else ""


# -- decisions and explanations ---------------------------------------------------------


def explanation_node(node: core_pb2.ExplanationNode) -> ExplanationNode:
    caveat = node.caveat
    return ExplanationNode(
        kind=enum_name(core_pb2.ExplanationNode.Kind.Name, node.kind, "KIND_"),
        object=_object(node, "object"),
        relation=node.relation,
        result=Decision.from_proto(node.result),
        expression=node.expression,
        subject=_subject(node, "subject"),
        relationship=_relationship(node, "relationship"),
        contextual=node.contextual,
        caveat=CaveatEvaluation(
            caveat.name,
            _dict(caveat.context),
            Decision.from_proto(caveat.result),
            tuple(caveat.missing_context),
        )
        if node.HasField("caveat")
        else None,
        binding=binding(node.binding) if node.HasField("binding") else None,
        children=tuple(explanation_node(child) for child in node.children),
        node_id=node.node_id,
        same_as=node.same_as,
        truncated=node.truncated,
        reason=node.reason,
    )


def explanation(message: core_pb2.Explanation) -> Explanation:
    return Explanation(
        root=explanation_node(message.root) if message.HasField("root") else None,
        deny_reason=enum_name(core_pb2.DenyReason.Name, message.deny_reason, "DENY_REASON_"),
        truncated=message.truncated,
    )


def explain_result(response: permissions_pb2.ExplainResponse) -> ExplainResult:
    return ExplainResult(
        decision=Decision.from_proto(response.decision),
        missing_context=tuple(response.missing_context),
        explanation=explanation(response.explanation),
        token=response.checked_at.token,
        decision_id=response.decision_id,
    )


def watch_event(response: relationships_pb2.WatchResponse) -> WatchEvent:
    operations = relationships_pb2.RelationshipChange.Operation
    return WatchEvent(
        changes=tuple(
            RelationshipChange(
                enum_name(operations.Name, change.operation, "OPERATION_"),
                text.format_relationship(change.relationship),
                change.relationship,
            )
            for change in response.changes
        ),
        token=response.changes_through.token,
        partial=response.partial,
    )


# -- administration ---------------------------------------------------------------------


def tenant(message: tenants_pb2.Tenant) -> Tenant:
    return Tenant(
        name=message.name,
        state=enum_name(tenants_pb2.TenantState.Name, message.state, "TENANT_STATE_"),
        create_time=time(message, "create_time"),
        update_time=time(message, "update_time"),
        head=message.head.token,
    )


def api_key(message: keys_pb2.ApiKeyInfo) -> ApiKey:
    return ApiKey(
        key_id=message.key_id,
        tenant=message.tenant,
        scopes=tuple(message.scopes),
        description=message.description,
        create_time=time(message, "create_time"),
        expire_time=time(message, "expire_time"),
        revoke_time=time(message, "revoke_time"),
        last_use_time=time(message, "last_use_time"),
        previous_secret_expire_time=time(message, "previous_secret_expire_time"),
        service_account=message.service_account,
    )


def role(message: tenancy_pb2.Role) -> Role:
    return Role(
        name=message.name,
        description=message.description,
        permissions=tuple(
            RolePermission(p.resource_type, p.permission) for p in message.permissions
        ),
        built_in=message.built_in,
        update_time=time(message, "update_time"),
    )


def binding(message: core_pb2.RoleBinding) -> RoleBinding:
    return RoleBinding(
        binding_id=message.binding_id,
        role=message.role,
        subject=_subject(message, "subject"),
        resource=_object(message, "resource"),
        create_time=time(message, "create_time"),
    )


def grant_reach(response: tenancy_pb2.GrantReachResponse) -> GrantReachResult:
    return GrantReachResult(
        resource_count=response.resource_count,
        permission_count=response.permission_count,
        resources=tuple(
            ReachedResource(text.format_object(r.resource), tuple(r.permissions))
            for r in response.resources
        ),
        next_cursor=response.next_cursor.token,
        token=response.read_at.token,
    )


def subject_status_name(value: int) -> str:
    return enum_name(tenancy_pb2.SubjectStatus.Name, value, "SUBJECT_STATUS_")


def subject_status(response: tenancy_pb2.GetSubjectStatusResponse) -> SubjectStatus:
    return SubjectStatus(
        status=subject_status_name(response.status),
        update_time=time(response, "update_time"),
        reason=response.reason,
        token=response.read_at.token,
    )


def scim_drift(message: tenancy_pb2.ScimDrift) -> ScimDrift:
    return ScimDrift(
        deactivated_upstream=tuple(text.format_object(o) for o in message.deactivated_upstream),
        inactive_here=tuple(text.format_object(o) for o in message.inactive_here),
        removed_upstream=tuple(text.format_relationship(r) for r in message.removed_upstream),
        written_outside=tuple(text.format_relationship(r) for r in message.written_outside),
        missing_here=tuple(text.format_relationship(r) for r in message.missing_here),
    )


def scim_sync(response: tenancy_pb2.GetScimSyncResponse) -> ScimSync:
    status = response.status
    return ScimSync(
        status=ScimSyncStatus(
            last_push=time(status, "last_push"),
            last_change=time(status, "last_change"),
            last_error_time=time(status, "last_error_time"),
            last_error=status.last_error,
            users=status.users,
            active_users=status.active_users,
            groups=status.groups,
            memberships=status.memberships,
        ),
        drift=scim_drift(response.drift),
        token=response.read_at.token,
    )


# -- audit ------------------------------------------------------------------------------


def decision_record(record: audit_pb2.DecisionRecord) -> DecisionRecord:
    return DecisionRecord(
        decision_id=record.decision_id,
        time=time(record, "time"),
        tenant=record.tenant,
        kind=enum_name(audit_pb2.DecisionKind.Name, record.kind, "DECISION_KIND_"),
        subject=_subject(record, "subject"),
        actor=_subject(record, "actor"),
        reason=record.reason,
        action=record.action,
        resource=_object(record, "resource"),
        context=_dict(record.context),
        redacted=tuple(record.redacted),
        contextual_relationships_digest=record.contextual_relationships_digest,
        decision=Decision.from_proto(record.decision),
        token=record.decided_at.token,
        schema_version=record.schema_version,
        explanation=explanation(record.explanation) if record.HasField("explanation") else None,
        cache_hit=record.cache_hit,
        latency=_duration(record, "latency"),
        server_version=record.server_version,
        credential_id=record.credential_id,
        result_count=record.result_count,
        result_digest=record.result_digest,
        details=_dict(record.details),
        sequence=record.sequence,
        previous_hash=record.previous_hash,
        hash=record.hash,
    )


def log_verification(response: audit_pb2.VerifyLogResponse) -> LogVerification:
    problem = response.first_problem
    return LogVerification(
        verified=response.verified,
        record_count=response.record_count,
        checkpoint_count=response.checkpoint_count,
        latest_checkpoint_time=time(response, "latest_checkpoint_time"),
        first_problem=LogProblem(
            enum_name(audit_pb2.LogProblem.Kind.Name, problem.kind, "KIND_"),
            problem.sequence,
            problem.decision_id,
            problem.description,
        )
        if response.HasField("first_problem")
        else None,
    )


def replay_item(response: audit_pb2.ReplayDecisionsResponse) -> ReplayedDecision | ReplaySummary:
    if response.WhichOneof("item") == "summary":
        summary = response.summary
        return ReplaySummary(
            summary.match_count,
            summary.differ_count,
            summary.cannot_replay_count,
            summary.truncated,
        )
    item = response.decision
    return ReplayedDecision(
        decision_id=item.decision_id,
        time=time(item, "time"),
        subject=_subject(item, "subject"),
        action=item.action,
        resource=_object(item, "resource"),
        outcome=enum_name(audit_pb2.ReplayOutcome.Name, item.outcome, "REPLAY_OUTCOME_"),
        recorded_decision=Decision.from_proto(item.recorded_decision),
        recorded_reason=item.recorded_reason,
        replayed_decision=Decision.from_proto(item.replayed_decision)
        if item.replayed_decision
        else None,
        replayed_reason=item.replayed_reason,
        problem=item.problem,
        token=item.decided_at.token,
        schema_version=item.schema_version,
    )
