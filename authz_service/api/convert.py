"""Protobuf <-> domain conversion. Protobuf stops here: nothing below api/ sees a message.

Every conversion validates and raises InvalidArgument naming the request field path
(`resource.object_id`, `updates[3].relationship.subject`, ...) and the offending value.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from authz_service.api.context_limits import ContextLimits, check_context
from authz_service.api.gen.authz.v1 import core_pb2
from authz_service.api.tokens import decode_fresh, encode_token
from authz_service.engine import CheckItem, Decision
from authz_service.errors import InvalidArgument, echo
from authz_service.model import (
    EMPTY_CONTEXT,
    ID_RE,
    NO_RELATION,
    TYPE_RE,
    WILDCARD,
    CaveatRef,
    Consistency,
    ConsistencyMode,
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    Revision,
    SubjectRef,
    validate_object_id,
    validate_relation_name,
    validate_type_name,
)

__all__ = [
    "consistency",
    "context",
    "decision_to_proto",
    "duration",
    "object_ref",
    "object_to_proto",
    "plain_check_item",
    "reason",
    "relationship",
    "relationship_filter",
    "relationship_to_proto",
    "subject_ref",
    "subject_to_proto",
    "tenant",
    "timestamp",
    "token",
]

# A leading `_` is reserved for the service's own streams (`_platform` in the decision log).
_TENANT_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_\-]{0,63}")

# What datetime can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_SECONDS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp())
_MAX_SECONDS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())

_DECISIONS = {
    Decision.ALLOWED: core_pb2.DECISION_ALLOWED,
    Decision.DENIED: core_pb2.DECISION_DENIED,
    Decision.CONDITIONAL: core_pb2.DECISION_CONDITIONAL,
}


def tenant(value: str, field: str = "tenant") -> str:
    if not _TENANT_RE.fullmatch(value):
        shown = echo(value) if value else "(empty)"
        raise InvalidArgument(
            f"tenant `{shown}` must be 1-64 letters, digits, `_` and `-`, starting with a "
            "letter or digit",
            field=field,
            value=value,
        )
    return value


MAX_REASON_CHARS = 1024


def reason(value: str, field: str = "reason") -> str:
    """A free-text reason, kept in the decision log: bounded so that it stays a reason."""
    if len(value) > MAX_REASON_CHARS:
        raise InvalidArgument(
            f"`{field}` is {len(value)} characters; the limit is {MAX_REASON_CHARS}",
            field=field,
            value=value,
        )
    return value


def object_ref(msg: core_pb2.ObjectReference, field: str) -> ObjectRef:
    return ObjectRef(
        validate_type_name(msg.object_type, f"{field}.object_type"),
        validate_object_id(msg.object_id, f"{field}.object_id"),
    )


def subject_ref(msg: core_pb2.SubjectReference, field: str) -> SubjectRef:
    obj = msg.object
    subject_id = validate_object_id(obj.object_id, f"{field}.object.object_id", allow_wildcard=True)
    relation = "" if msg.relation in ("", "...") else msg.relation
    if relation:
        validate_relation_name(relation, f"{field}.relation")
        if subject_id == WILDCARD:
            raise InvalidArgument(
                f"`{field}.relation` is `{echo(relation)}`: a wildcard subject has no relation",
                field=f"{field}.relation",
                value=relation,
            )
    return SubjectRef(
        validate_type_name(obj.object_type, f"{field}.object.object_type"), subject_id, relation
    )


def plain_check_item(msg: Any) -> CheckItem | None:
    """The CheckItem of a Check, CheckBulk item or Explain request in its common form (an
    object subject, no context), when every part of it is valid; None otherwise.

    The full conversion (`object_ref`, `subject_ref`, `context`) builds a field path for
    every part it validates, in case it fails; CheckBulk converts up to 1,000 items per
    call, so the common form is checked first with the same patterns and no paths. It
    accepts a subset of what the full conversion accepts, converted to the same values;
    anything else (a wildcard or subject set, a context, an invalid part) is left to the
    full conversion, which names the field of any error."""
    permission = msg.permission
    if not permission or msg.HasField("context"):
        return None
    resource, subject = msg.resource, msg.subject
    if subject.relation not in ("", "..."):
        return None
    obj = subject.object
    rtype, rid = resource.object_type, resource.object_id
    stype, sid = obj.object_type, obj.object_id
    if not (
        TYPE_RE.fullmatch(rtype)
        and TYPE_RE.fullmatch(stype)
        and ID_RE.fullmatch(rid)
        and ID_RE.fullmatch(sid)
    ):
        return None
    return CheckItem(ObjectRef(rtype, rid), permission, SubjectRef(stype, sid), EMPTY_CONTEXT)


_LIMITS = ContextLimits()


def _normalise(value: Any) -> Any:
    """Struct numbers are doubles; JSON callers meant 42, not 42.0, for int parameters."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def context(
    msg: struct_pb2.Struct, field: str = "context", limits: ContextLimits = _LIMITS
) -> FrozenContext:
    if not msg.fields:
        return EMPTY_CONTEXT
    check_context(msg, field, limits)
    _finite(msg, field)
    return FrozenContext(_normalise(json_format.MessageToDict(msg)))


def _finite(msg: struct_pb2.Struct | struct_pb2.ListValue, field: str) -> None:
    """JSON has no NaN or Infinity, and a caveat cannot compare with them meaningfully."""
    items = msg.fields.items() if isinstance(msg, struct_pb2.Struct) else enumerate(msg.values)
    for key, value in items:
        path = f"{field}.{key}" if isinstance(key, str) else f"{field}[{key}]"
        kind = value.WhichOneof("kind")
        if kind == "number_value" and not math.isfinite(value.number_value):
            raise InvalidArgument(
                f"`{echo(path)}` is {value.number_value}: context numbers must be finite",
                field=path,
                value=value.number_value,
            )
        if kind == "struct_value":
            _finite(value.struct_value, path)
        elif kind == "list_value":
            _finite(value.list_value, path)


def timestamp(msg: timestamp_pb2.Timestamp, field: str) -> datetime:
    """A Timestamp as an aware datetime; outside years 1-9999 is INVALID_ARGUMENT."""
    if not (_MIN_SECONDS <= msg.seconds <= _MAX_SECONDS and 0 <= msg.nanos < 1_000_000_000):
        raise InvalidArgument(
            f"`{field}` ({msg.seconds} s, {msg.nanos} ns) must lie between "
            "0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z",
            field=field,
            value=msg.seconds,
        )
    return msg.ToDatetime(tzinfo=UTC)


def duration(
    msg: duration_pb2.Duration, field: str, low: timedelta, high: timedelta, span: str
) -> timedelta:
    """A Duration from `low` to `high` (both non-negative, inclusive), named `span` in the
    error, e.g. "between 0 and 30 days". The whole Duration is compared, so the limit plus
    a nanosecond is past it. Kept to the microsecond, as the store and timedelta keep time:
    nanoseconds below that are dropped."""
    seconds, nanos = msg.seconds, msg.nanos
    # Compared in whole nanoseconds before converting: a hostile Duration overflows
    # timedelta. A non-negative Duration has nanos of 0 to 999,999,999 (protobuf's rule).
    total = seconds * 1_000_000_000 + nanos
    if not (0 <= nanos < 1_000_000_000 and _nanos(low) <= total <= _nanos(high)):
        raise InvalidArgument(
            f"`{field}` ({seconds} s, {nanos} ns) must be {span}",
            field=field,
            value=f"{seconds}s {nanos}ns",
        )
    return timedelta(seconds=seconds, microseconds=nanos // 1000)


def _nanos(value: timedelta) -> int:
    return (value // timedelta(microseconds=1)) * 1000


def relationship(
    msg: core_pb2.Relationship, field: str, limits: ContextLimits = _LIMITS
) -> Relationship:
    caveat = None
    if msg.HasField("caveat") and msg.caveat.name:
        caveat = CaveatRef(
            msg.caveat.name, context(msg.caveat.context, f"{field}.caveat.context", limits)
        )
    elif msg.HasField("caveat") and msg.caveat.context.fields:
        # Dropping the nameless caveat would store the relationship unconditionally.
        raise InvalidArgument(
            f"`{field}.caveat` has a context but no name",
            field=f"{field}.caveat.name",
            value="",
        )
    expires = None
    if msg.HasField("expires_at"):
        expires = timestamp(msg.expires_at, f"{field}.expires_at")
    return Relationship(
        object_ref(msg.resource, f"{field}.resource"),
        validate_relation_name(msg.relation, f"{field}.relation"),
        subject_ref(msg.subject, f"{field}.subject"),
        caveat,
        expires,
    )


def relationship_filter(
    msg: core_pb2.RelationshipFilter, field: str = "filter"
) -> RelationshipFilter:
    if msg.resource_type:
        validate_type_name(msg.resource_type, f"{field}.resource_type")
    if msg.subject_type:
        validate_type_name(msg.subject_type, f"{field}.subject_type")
    if msg.relation:
        validate_relation_name(msg.relation, f"{field}.relation")
    # An id means nothing without its type: `resource_ids: [x]` alone would select the
    # `x` of every type, for deletion too.
    for ids, type_name, what in (
        (msg.resource_ids, msg.resource_type, "resource"),
        (msg.subject_ids, msg.subject_type, "subject"),
    ):
        if ids and not type_name:
            raise InvalidArgument(
                f"`{field}.{what}_ids` requires `{field}.{what}_type`",
                field=f"{field}.{what}_ids",
                value=echo(", ".join(ids[:3])),
            )
    subject_relation = None
    if msg.HasField("subject_relation"):
        subject_relation = NO_RELATION if msg.subject_relation == "..." else msg.subject_relation
        if subject_relation:
            validate_relation_name(subject_relation, f"{field}.subject_relation")
    return RelationshipFilter(
        resource_type=msg.resource_type or None,
        resource_ids=tuple(msg.resource_ids) or None,
        relation=msg.relation or None,
        subject_type=msg.subject_type or None,
        subject_ids=tuple(msg.subject_ids) or None,
        subject_relation=subject_relation,
    )


def consistency(
    msg: core_pb2.Consistency, tenant_name: str, field: str = "consistency"
) -> Consistency:
    which = msg.WhichOneof("requirement")
    if which == "at_least_as_fresh":
        revision, schema_seq = decode_fresh(
            msg.at_least_as_fresh.token, tenant_name, f"{field}.at_least_as_fresh"
        )
        return Consistency(ConsistencyMode.AT_LEAST_AS_FRESH, revision, schema_seq)
    if which == "at_exact_snapshot":
        revision, schema_seq = decode_fresh(
            msg.at_exact_snapshot.token,
            tenant_name,
            f"{field}.at_exact_snapshot",
            schema_token=False,
        )
        return Consistency(ConsistencyMode.AT_EXACT_SNAPSHOT, revision, schema_seq)
    if which in ("fully_consistent", "minimize_latency") and not getattr(msg, which):
        raise InvalidArgument(
            f"`{field}.{which}` is false: set it to true, or set another requirement",
            field=f"{field}.{which}",
            value=False,
        )
    if which == "fully_consistent":
        return Consistency(ConsistencyMode.FULLY_CONSISTENT)
    return Consistency(ConsistencyMode.MINIMIZE_LATENCY)


def token(tenant_name: str, revision: Revision, schema_seq: int = 0) -> core_pb2.ConsistencyToken:
    """`schema_seq`: the schema a write was checked against, for tokens of writes."""
    return core_pb2.ConsistencyToken(token=encode_token(tenant_name, revision, schema_seq))


def decision_to_proto(decision: Decision) -> core_pb2.Decision.ValueType:
    return _DECISIONS[decision]


def object_to_proto(obj: ObjectRef) -> core_pb2.ObjectReference:
    return core_pb2.ObjectReference(object_type=obj.type, object_id=obj.id)


def subject_to_proto(subject: SubjectRef) -> core_pb2.SubjectReference:
    return core_pb2.SubjectReference(
        object=core_pb2.ObjectReference(object_type=subject.type, object_id=subject.id),
        relation=subject.relation,
    )


def relationship_to_proto(rel: Relationship) -> core_pb2.Relationship:
    msg = core_pb2.Relationship(
        resource=object_to_proto(rel.resource),
        relation=rel.relation,
        subject=subject_to_proto(rel.subject),
    )
    if rel.caveat is not None:
        msg.caveat.name = rel.caveat.name
        if rel.caveat.context:
            msg.caveat.context.update(rel.caveat.context.to_dict())
    if rel.expires_at is not None:
        msg.expires_at.FromDatetime(rel.expires_at.astimezone(UTC))
    return msg
