"""With the decision log off the audit trail only issues decision ids."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any

from authz_service.decisionlog import DecisionRecord, EncodedCheck
from authz_service.engine import CheckItem, CheckResult, Decision, Snapshot
from authz_service.model import EMPTY_CONTEXT, ObjectRef, SubjectRef
from authz_service.schema import compile_schema
from authz_service.service.audit import AuditTrail, CallInfo

ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
SCHEMA = compile_schema("definition user {}\ndefinition doc { relation viewer: user }")


class Recorder:
    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []

    def expecting(self) -> AbstractContextManager[None]:
        return nullcontext()

    def redacts(self, context: Mapping[str, Any]) -> bool:
        return False

    async def append(self, record: DecisionRecord | EncodedCheck) -> object:
        self.records.append(record.decode() if isinstance(record, EncodedCheck) else record)
        return record

    async def append_many(self, records: Sequence[DecisionRecord | EncodedCheck]) -> object:
        self.records.extend(r.decode() if isinstance(r, EncodedCheck) else r for r in records)
        return records


async def _three() -> AsyncIterator[int]:
    for i in range(3):
        yield i


def _snap() -> Snapshot:
    return Snapshot("acme", 3, SCHEMA, datetime(2030, 1, 2, tzinfo=UTC))


async def test_a_check_with_the_log_off_gets_an_id_of_its_time_and_no_record() -> None:
    item = CheckItem(ObjectRef("doc", "d"), "viewer", SubjectRef("user", "u"))
    decision_id = await AuditTrail(None).check(
        _snap(), item, CheckResult(Decision.ALLOWED), CallInfo(), cache_hit=True, started=0.0
    )
    assert ULID.match(decision_id)
    recorder = Recorder()
    logged = await AuditTrail(recorder).check(
        _snap(), item, CheckResult(Decision.ALLOWED), CallInfo(), cache_hit=True, started=0.0
    )
    assert [r.decision_id for r in recorder.records] == [logged]
    assert decision_id[:10] == logged[:10]  # the time part: the snapshot's time


async def test_streams_pass_through_untouched_when_the_log_is_off() -> None:
    fields = {"kind": "lookup_resources", "subject": "user:u", "action": "view"}
    stream = _three()
    off = AuditTrail(None).stream_summary(
        _snap(), CallInfo(), resource="doc:*", context=EMPTY_CONTEXT, **fields
    )
    assert off.wrap(stream, str) is stream  # nothing collected per streamed item
    recorder = Recorder()
    on = AuditTrail(recorder).stream_summary(
        _snap(), CallInfo(), resource="doc:*", context=EMPTY_CONTEXT, **fields
    )
    assert [i async for i in on.wrap(_three(), str)] == [0, 1, 2]
    assert [r.result_count for r in recorder.records] == [3]
