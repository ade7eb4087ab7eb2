"""A Check's record in its stored form, built straight from the Check's fields.

Every logged Check pays for its record on the event loop. `DecisionRecord` takes any
kind of record from any caller, so it freezes and validates each field into a dataclass
before encoding it; for a Check most of that is already known (see `encode_check`), and
what remains to check is a few comparisons. This writes the same runs as
`DecisionRecord.segments`, one formatted string each, with no dataclass in between: the
bytes are the same for the same fields (a property test compares the two paths on
generated fields). The log is still read back as `DecisionRecord`s (`LogEntry.record`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, final

from authz_service.decisionlog.record import (
    FORMAT_VERSION,
    Decision,
    DecisionKind,
    DecisionRecord,
    encode_object,
    encode_optional,
    format_time,
    is_decision_id,
    json_object,
)
from authz_service.errors import InvalidArgument, echo
from authz_service.model import EMPTY_CONTEXT

__all__ = ["EncodedCheck", "encode_check"]

_encode_string = json.encoder.encode_basestring
_KINDS = frozenset({DecisionKind.CHECK, DecisionKind.CHECK_BULK_ITEM})
_DECISIONS = frozenset({Decision.ALLOWED, Decision.DENIED, Decision.CONDITIONAL})


@final
class EncodedCheck:
    """An evaluation's record as the runs the chain splices (`DecisionRecord.segments`).

    `has_context` says whether the request context is non-empty: only then can the
    redactor have anything to replace (and only then does it decode the record)."""

    __slots__ = ("decision_id", "has_context", "segments", "tenant")

    def __init__(
        self, tenant: str, decision_id: str, segments: tuple[bytes, ...], has_context: bool
    ) -> None:
        self.tenant = tenant
        self.decision_id = decision_id
        self.segments = segments
        self.has_context = has_context

    def decode(self) -> DecisionRecord:
        """The same record as a `DecisionRecord` (for redaction, which rewrites context)."""
        return DecisionRecord.from_dict(json.loads(b"{" + b",".join(self.segments) + b"}"))


def encode_check(
    *,
    decision_id: str,
    time: datetime,
    tenant: str,
    kind: DecisionKind,
    subject: str,
    action: str,
    resource: str,
    decision: str,
    revision: int,
    schema_version: str,
    server_version: str,
    actor: str | None = None,
    reason: str | None = None,
    credential_id: str | None = None,
    context: Mapping[str, Any] = EMPTY_CONTEXT,
    contextual_relationships_digest: str | None = None,
    explanation: Mapping[str, Any] = EMPTY_CONTEXT,
    cache_hit: bool = False,
    latency_us: int = 0,
    details: Mapping[str, Any] = EMPTY_CONTEXT,
) -> EncodedCheck:
    """The record `DecisionRecord(...)` would make of these fields, encoded.

    It refuses what `DecisionRecord` refuses, with the same errors: the checks that are
    comparisons are made here; JSON objects go through the same freezing; a text field
    that is not text, a lone surrogate, NaN or Infinity fail in the encoding itself, as
    they do there. What it leaves out is the dataclass and the coercions a Check never
    needs (its kind is a `DecisionKind`, its decision an engine decision's text, its time
    the snapshot's aware datetime, which `format_time` converts to UTC as the record does).
    """
    if not is_decision_id(decision_id):
        raise InvalidArgument(
            f"`{echo(decision_id)}` is not a ulid", field="decision_id", value=decision_id
        )
    if not tenant:
        raise InvalidArgument("tenant must not be empty", field="tenant")
    if kind not in _KINDS:
        raise InvalidArgument(f"`{echo(kind)}` is not an evaluation kind", field="kind")
    if decision not in _DECISIONS:
        raise InvalidArgument(
            f"decision `{echo(decision)}` does not fit kind `{echo(kind)}`", field="decision"
        )
    if revision < 0 or latency_us < 0:
        raise InvalidArgument("revision and latency_us must not be negative")
    context = json_object(context, "context")
    explanation = json_object(explanation, "explanation")
    details = json_object(details, "details")
    s, o, j = _encode_string, encode_optional, encode_object
    try:
        # The runs of DecisionRecord._runs, in the same order; redaction (if configured)
        # happens in the writer, so `redacted` is empty here.
        runs = (
            f'"action":{s(action)},"actor":{o(actor)},'
            f'"cache_hit":{"true" if cache_hit else "false"},"context":{j(context)},'
            f'"contextual_relationships_digest":{o(contextual_relationships_digest)},'
            f'"credential_id":{o(credential_id)},"decision":{s(decision)},'
            f'"decision_id":{s(decision_id)},"details":{j(details)},'
            f'"explanation":{j(explanation)},"format":{FORMAT_VERSION}',
            f'"kind":{s(kind)},"latency_us":{int(latency_us)}',
            f'"reason":{o(reason)},"redacted":[],"resource":{s(resource)},'
            f'"result_count":null,"result_digest":null,"revision":{int(revision)},'
            f'"schema_version":{s(schema_version)}',
            f'"server_version":{s(server_version)},"subject":{s(subject)},'
            f'"tenant":{s(tenant)},"time":{s(format_time(time))}',
        )
    except TypeError as exc:  # a text field that is not text
        raise InvalidArgument(f"malformed decision record: {exc}") from exc
    try:
        segments = (runs[0].encode(), runs[1].encode(), runs[2].encode(), runs[3].encode())
    except UnicodeEncodeError as exc:  # a lone surrogate: does not round-trip
        raise InvalidArgument(f"value is not canonical json: {exc}") from exc
    return EncodedCheck(tenant, decision_id, segments, bool(context))
