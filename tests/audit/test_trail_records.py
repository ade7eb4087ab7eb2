"""What the audit trail records for a Check: every field from where it comes from.

Checks and CheckBulk items are encoded straight from their fields (`encode_check`),
without the generic path the other records take; these tests pin which value lands in
which field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

import pytest

from authz_service.decisionlog import DecisionKind, DecisionRecord, EncodedCheck
from authz_service.engine import CheckItem, CheckResult, Decision, Snapshot
from authz_service.errors import AuthzError, CaveatError, DeadlineExceeded, InvalidArgument
from authz_service.model import FrozenContext, ObjectRef, Relationship, SubjectRef
from authz_service.schema import compile_schema
from authz_service.service.audit import SERVER_VERSION, AuditTrail, CallInfo, digest_relationships

SCHEMA = compile_schema("definition user {}\ndefinition doc { relation viewer: user }")
AT = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
ITEM = CheckItem(
    ObjectRef("doc", 'd"1'), "viewer", SubjectRef("user", "ü"), FrozenContext({"ip": "10.0.0.1"})
)
CALL = CallInfo(
    credential_id="key-1", actor="agent:bot", reason="ticket \\7", agents=("agent:a", "agent:b")
)
CONTEXTUAL = [Relationship(ObjectRef("doc", 'd"1'), "viewer", SubjectRef("user", "x"))]


class Recorder:
    def __init__(self, redacted: frozenset[str] = frozenset()) -> None:
        self.records: list[DecisionRecord] = []
        self.redacted = redacted  # top-level context keys this log redacts

    def expecting(self) -> AbstractContextManager[None]:
        return nullcontext()

    def redacts(self, context: Mapping[str, Any]) -> bool:
        return not self.redacted.isdisjoint(context)

    async def append(self, record: DecisionRecord | EncodedCheck) -> object:
        assert isinstance(record, EncodedCheck)  # a Check takes the direct path
        self.records.append(record.decode())
        return record

    async def append_many(self, records: Sequence[DecisionRecord | EncodedCheck]) -> object:
        for record in records:
            await self.append(record)
        return records


def _expected(**fields: object) -> dict[str, object]:
    common = {
        "time": "2030-01-02T03:04:05.678901Z",
        "tenant": "acme",
        "revision": 3,
        "schema_version": SCHEMA.version,
        "server_version": SERVER_VERSION,
        "kind": "check",
        "subject": "user:ü",
        "action": "viewer",
        "resource": 'doc:d"1',
        "context": {"ip": "10.0.0.1"},
        "credential_id": "key-1",
        "actor": "agent:bot",
        "reason": "ticket \\7",
        "details": {"agents": ["agent:a", "agent:b"]},
        "redacted": [],
        "result_count": None,
        "result_digest": None,
        "format": 1,
    }
    return {**common, **fields}


async def test_a_checks_record_holds_the_request_the_answer_and_the_call() -> None:
    recorder = Recorder()
    result = CheckResult(Decision.CONDITIONAL, missing_context=("ip_allowed",))
    decision_id = await AuditTrail(recorder).check(
        Snapshot("acme", 3, SCHEMA, AT),
        ITEM,
        result,
        CALL,
        cache_hit=True,
        started=0.0,
        contextual=CONTEXTUAL,
    )
    (record,) = recorder.records
    fields = record.to_dict()
    assert fields.pop("latency_us") > 0
    assert fields == _expected(
        decision_id=decision_id,
        decision="CONDITIONAL",
        explanation={"missing_context": ["ip_allowed"]},
        contextual_relationships_digest=digest_relationships(CONTEXTUAL),
        cache_hit=True,
    )


async def test_a_failed_checks_record_is_a_denial_with_the_error() -> None:
    recorder = Recorder()
    decision_id = await AuditTrail(recorder).check_failed(
        Snapshot("acme", 3, SCHEMA, AT),
        ITEM,
        CALL,
        DeadlineExceeded("deadline exceeded"),
        started=0.0,
        kind=DecisionKind.CHECK_BULK_ITEM,
        contextual=CONTEXTUAL,
    )
    (record,) = recorder.records
    fields = record.to_dict()
    assert fields.pop("latency_us") > 0
    assert fields == _expected(
        decision_id=decision_id,
        kind="check_bulk_item",
        decision="DENIED",
        explanation={"error": "DeadlineExceeded", "message": "deadline exceeded"},
        # The failure may have come from them: replay must know they were there.
        contextual_relationships_digest=digest_relationships(CONTEXTUAL),
        cache_hit=False,
    )


async def test_a_check_without_agents_records_empty_details() -> None:
    recorder = Recorder()
    await AuditTrail(recorder).check(
        Snapshot("acme", 3, SCHEMA, AT),
        ITEM,
        CheckResult(Decision.ALLOWED),
        CallInfo(),
        cache_hit=False,
        started=0.0,
    )
    (record,) = recorder.records
    assert (dict(record.details), dict(record.explanation), record.actor) == ({}, {}, None)
    assert record.contextual_relationships_digest is None


async def test_check_bulk_records_each_item_with_the_calls_fields() -> None:
    recorder = Recorder()
    other = CheckItem(ObjectRef("doc", "d2"), "viewer", SubjectRef("user", "ü"))
    ids = await AuditTrail(recorder).check_bulk(
        Snapshot("acme", 3, SCHEMA, AT),
        [ITEM, other],
        [CheckResult(Decision.ALLOWED), DeadlineExceeded("deadline exceeded")],
        CALL,
        started=0.0,
        contextual=CONTEXTUAL,
    )
    assert [r.decision_id for r in recorder.records] == ids
    allowed, failed = (r.to_dict() for r in recorder.records)
    assert allowed.pop("latency_us") == failed.pop("latency_us") > 0  # one per call
    assert allowed == _expected(
        decision_id=ids[0],
        kind="check_bulk_item",
        decision="ALLOWED",
        explanation={},
        contextual_relationships_digest=digest_relationships(CONTEXTUAL),
        cache_hit=False,
    )
    assert failed == _expected(
        decision_id=ids[1],
        kind="check_bulk_item",
        resource="doc:d2",
        context={},
        decision="DENIED",
        explanation={"error": "DeadlineExceeded", "message": "deadline exceeded"},
        contextual_relationships_digest=digest_relationships(CONTEXTUAL),  # failed or not
        cache_hit=False,
    )


QUOTING = CaveatError(
    "parameter `ip` of caveat `net` expects ipaddress, got `10.0.0.1`",
    field="context",
    unquoted="parameter `ip` of caveat `net` expects ipaddress, got string",
)


@pytest.mark.parametrize(
    ("redacted", "error", "message"),
    [
        # Nothing of this context is redacted: the message as the caller got it.
        (frozenset({"ssn"}), QUOTING, QUOTING.message),
        # It is: a context error's message without the context's values ...
        (frozenset({"ip"}), QUOTING, QUOTING.unquoted),
        # ... or none, when the error does not say what that would be.
        (
            frozenset({"ip"}),
            InvalidArgument("`10.0.0.1` is odd", field="context"),
            "the message is not logged: it may quote context values the log redacts",
        ),
        # An error about something else quotes no context value.
        (frozenset({"ip"}), DeadlineExceeded("deadline exceeded"), "deadline exceeded"),
    ],
)
async def test_a_failed_records_message_leaves_out_redacted_context(
    redacted: frozenset[str], error: AuthzError, message: str
) -> None:
    recorder = Recorder(redacted)
    trail = AuditTrail(recorder)
    snap = Snapshot("acme", 3, SCHEMA, AT)
    await trail.check_failed(snap, ITEM, CALL, error, started=0.0)
    await trail.check_bulk(snap, [ITEM], [error], CALL, started=0.0)
    explanations = [dict(record.explanation) for record in recorder.records]
    assert explanations == [{"error": type(error).__name__, "message": message}] * 2
