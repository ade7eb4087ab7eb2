"""Calls described once for both clients: the request, the stub method, how to convert
the answer, whether a retry is safe and which token to remember.

A client method builds an operation here and hands it to its own runner (await or block),
so the async and the blocking client cannot drift apart in what they send or return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from authz_client import _results, text
from authz_client._stubs import audit_pb2, core_pb2, permissions_pb2
from authz_client.types import Decision, ExplainResult
from authz_client.types_audit import (
    DecisionRecord,
    LogVerification,
    ReplayedDecision,
    ReplaySummary,
)

__all__ = [
    "Collect",
    "Stream",
    "Unary",
    "contextual",
    "cursor",
    "explain",
    "explain_decision",
    "optional_object",
    "optional_subject",
    "query_decisions",
    "replay_decisions",
    "subjects",
    "timestamp",
    "verify_log",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Unary(Generic[T]):
    """One unary call. `remember(tenant, response)` returns the written token, if any."""

    service: str
    method: str
    request: Message
    convert: Callable[[Any], T]
    idempotent: bool = True
    # The tenant whose read-your-writes token the response's write token becomes.
    tenant: str | None = None
    written: Callable[[Any], str] | None = None


@dataclass(frozen=True, slots=True)
class Stream(Generic[T]):
    """One server-streaming read, resumed from its last cursor after UNAVAILABLE."""

    service: str
    method: str
    request: Message
    convert: Callable[[Any], T]


@dataclass(frozen=True, slots=True)
class Collect(Generic[T]):
    """A server stream read whole into one result: it has no cursor to resume from, so
    after UNAVAILABLE it is read again from the start."""

    service: str
    method: str
    request: Message
    convert: Callable[[list[Any]], T]


# -- argument conversions ---------------------------------------------------------------


def optional_object(
    value: str | core_pb2.ObjectReference | None,
) -> core_pb2.ObjectReference | None:
    if value is None or value == "":
        return None
    return text.parse_object(value) if isinstance(value, str) else value


def optional_subject(
    value: str | core_pb2.SubjectReference | None,
) -> core_pb2.SubjectReference | None:
    if value is None or value == "":
        return None
    return text.parse_subject(value) if isinstance(value, str) else value


def subjects(values: Iterable[str | core_pb2.SubjectReference]) -> list[core_pb2.SubjectReference]:
    return [text.parse_subject(v) if isinstance(v, str) else v for v in values]


def contextual(
    relationships: Iterable[str | core_pb2.Relationship],
) -> list[core_pb2.Relationship]:
    return [text.parse_relationship(r) if isinstance(r, str) else r for r in relationships]


def cursor(value: str) -> core_pb2.Cursor | None:
    return core_pb2.Cursor(token=value) if value else None


def timestamp(when: datetime | None, name: str) -> timestamp_pb2.Timestamp | None:
    """A google.protobuf.Timestamp, or None; a naive datetime is refused (ambiguous)."""
    if when is None:
        return None
    if when.tzinfo is None:
        raise ValueError(f"{name}: `{when.isoformat()}` needs a time zone")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


# -- permissions and audit --------------------------------------------------------------


def explain(
    tenant: str,
    resource: core_pb2.ObjectReference,
    permission: str,
    subject: core_pb2.SubjectReference,
    *,
    context: Any,
    consistency: core_pb2.Consistency | None,
    actor: str | core_pb2.SubjectReference | None,
    reason: str,
    contextual_relationships: Sequence[str | core_pb2.Relationship],
    agents: Sequence[str | core_pb2.SubjectReference],
) -> Unary[ExplainResult]:
    request = permissions_pb2.ExplainRequest(
        tenant=tenant,
        resource=resource,
        permission=permission,
        subject=subject,
        context=context,
        consistency=consistency,
        actor=optional_subject(actor),
        reason=reason,
        contextual_relationships=contextual(contextual_relationships),
        agents=subjects(agents),
    )
    return Unary("PermissionsService", "Explain", request, _results.explain_result)


def query_decisions(
    tenant: str,
    *,
    subject: str | core_pb2.SubjectReference | None,
    actor: str | core_pb2.SubjectReference | None,
    resource: str | core_pb2.ObjectReference | None,
    action: str,
    decision: Decision | None,
    kind: str,
    start_time: datetime | None,
    end_time: datetime | None,
    limit: int,
    cursor_token: str,
) -> Stream[DecisionRecord]:
    request = audit_pb2.QueryDecisionsRequest(
        tenant=tenant,
        subject=optional_subject(subject),
        actor=optional_subject(actor),
        resource=optional_object(resource),
        action=action,
        decision=cast("core_pb2.Decision.ValueType", decision.value if decision else 0),
        kind=_decision_kind(kind),
        start_time=timestamp(start_time, "start_time"),
        end_time=timestamp(end_time, "end_time"),
        limit=limit,
        cursor=cursor(cursor_token),
    )
    return Stream(
        "AuditService",
        "QueryDecisions",
        request,
        lambda response: _results.decision_record(response.record),
    )


def _decision_kind(kind: str) -> audit_pb2.DecisionKind.ValueType:
    if not kind:
        return audit_pb2.DECISION_KIND_UNSPECIFIED
    try:
        return audit_pb2.DecisionKind.Value("DECISION_KIND_" + kind.upper())
    except ValueError:
        raise ValueError(f"unknown decision kind `{kind[:64]}`") from None


def replay_decisions(
    tenant: str,
    *,
    start_time: datetime | None,
    end_time: datetime | None,
    subject: str | core_pb2.SubjectReference | None,
    resource: str | core_pb2.ObjectReference | None,
    schema_version: str,
    limit: int,
) -> Stream[ReplayedDecision | ReplaySummary]:
    request = audit_pb2.ReplayDecisionsRequest(
        tenant=tenant,
        start_time=timestamp(start_time, "start_time"),
        end_time=timestamp(end_time, "end_time"),
        subject=optional_subject(subject),
        resource=optional_object(resource),
        schema_version=schema_version,
        limit=limit,
    )
    return Stream("AuditService", "ReplayDecisions", request, _results.replay_item)


def verify_log(tenant: str, public_key_pem: str) -> Unary[LogVerification]:
    request = audit_pb2.VerifyLogRequest(tenant=tenant, public_key_pem=public_key_pem)
    return Unary("AuditService", "VerifyLog", request, _results.log_verification)


def explain_decision(tenant: str, decision_id: str) -> Unary[DecisionRecord]:
    request = audit_pb2.ExplainDecisionRequest(tenant=tenant, decision_id=decision_id)
    return Unary(
        "AuditService",
        "ExplainDecision",
        request,
        lambda response: _results.decision_record(response.record),
    )
