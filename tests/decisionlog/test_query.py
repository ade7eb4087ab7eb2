"""Querying and formatting records from the file sink."""

from __future__ import annotations

from datetime import timedelta

import pytest

from authz_service.decisionlog import (
    Decision,
    DecisionLogConfig,
    RecordFilter,
    find_decision,
    format_explain,
    format_jsonl,
    format_table,
    iter_entries,
)
from authz_service.errors import FailedPrecondition, NotFound

from .helpers import BASE_TIME, make_record, read_all_lines, segments, write_records


@pytest.fixture
async def log(config: DecisionLogConfig) -> DecisionLogConfig:
    await write_records(config, 30, tenants=("acme", "globex"))
    return config


def ids(config: DecisionLogConfig, where: RecordFilter) -> list[str]:
    return [s.entry.record.decision_id for s in iter_entries(config.root, where)]


async def test_filters_match_exactly(log: DecisionLogConfig) -> None:
    records = [make_record(i, ("acme", "globex")[i % 2]) for i in range(30)]
    # make_record derives ids from time, so rebuild expectations from what was stored
    stored = {s.entry.record.decision_id: s.entry.record for s in iter_entries(log.root)}
    assert len(stored) == 30

    acme = ids(log, RecordFilter(tenant="acme"))
    assert len(acme) == 15
    assert all(stored[i].tenant == "acme" for i in acme)
    subject = ids(log, RecordFilter(subject="user:u3"))
    assert subject
    assert all(stored[i].subject == "user:u3" for i in subject)
    assert len(subject) == sum(r.subject == "user:u3" for r in records)
    denied = ids(log, RecordFilter(tenant="globex", decision=Decision.DENIED, action="write"))
    assert all(
        (stored[i].tenant, stored[i].decision, stored[i].action) == ("globex", "DENIED", "write")
        for i in denied
    )
    assert ids(log, RecordFilter(resource="document:d7")) == [
        i for i, r in stored.items() if r.resource == "document:d7"
    ]
    assert ids(log, RecordFilter(actor="admin:root")) == []
    assert ids(log, RecordFilter(tenant="nobody")) == []


async def test_time_range_is_half_open(log: DecisionLogConfig) -> None:
    since, until = BASE_TIME + timedelta(milliseconds=10), BASE_TIME + timedelta(milliseconds=20)
    found = [
        s.entry.record.time for s in iter_entries(log.root, RecordFilter(since=since, until=until))
    ]
    assert len(found) == 10
    assert min(found) == since
    assert max(found) < until


async def test_find_decision_and_explain(log: DecisionLogConfig) -> None:
    wanted = next(iter_entries(log.root, RecordFilter(tenant="globex"))).entry
    found = find_decision(log.root, wanted.record.decision_id)
    assert found.entry == wanted
    assert found.line == 1
    assert found.segment == segments(log, "globex")[0]
    text = format_explain(found)
    assert wanted.record.decision_id in text
    assert wanted.hash in text
    assert "explanation:" in text
    assert "stored at" in text
    with pytest.raises(NotFound):
        find_decision(log.root, "01HZZZZZZZZZZZZZZZZZZZZZZZ")


async def test_table_and_jsonl_formats(log: DecisionLogConfig) -> None:
    entries = list(iter_entries(log.root, RecordFilter(tenant="acme")))
    table = format_table(entries).splitlines()
    assert table[0].split() == [
        "TIME", "DECISION_ID", "TENANT", "KIND", "SUBJECT", "ACTOR",
        "ACTION", "RESOURCE", "DECISION", "REVISION", "CACHE",
    ]  # fmt: skip
    assert len(table) == 16
    assert entries[0].entry.record.decision_id in table[1]
    lines = list(format_jsonl(entries))
    assert [line.encode() for line in lines] == read_all_lines(log, "acme")


async def test_damaged_line_is_reported_not_skipped(log: DecisionLogConfig) -> None:
    (path,) = segments(log, "acme")
    lines = read_all_lines(log, "acme")
    lines[3] = lines[3].replace(b'"revision":', b'"revision":1')
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(FailedPrecondition, match=r"000001.jsonl`:4"):
        list(iter_entries(log.root, RecordFilter(tenant="acme")))
