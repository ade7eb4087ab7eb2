"""Records, canonical encoding, decision ids and redaction paths."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz_service.decisionlog import (
    ChainHead,
    DecisionKind,
    DecisionRecord,
    LogEntry,
    canonical_json,
    generate_keypair,
    load_private_key,
    load_public_key,
    new_decision_id,
    new_decision_ids,
)
from authz_service.decisionlog.chain import chain_hash, entry_from_line
from authz_service.decisionlog.layout import stream_dir_name, tenant_from_dir_name
from authz_service.decisionlog.record import format_time
from authz_service.decisionlog.redact import Redactor
from authz_service.errors import AlreadyExists, InvalidArgument, NotFound

from .helpers import BASE_TIME, make_record


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "é", None]}) == '{"a":[1.5,"é",null],"b":1}'.encode()
    with pytest.raises(InvalidArgument):
        canonical_json({"x": float("nan")})


def test_canonical_json_escapes_exactly_as_documented() -> None:
    # docs/decision-log.md, "Canonical encoding": what an auditor reimplements.
    text = "".join(map(chr, range(0x20))) + '"\\/\x7f\x85\u2028\u2029é\U0001f600'
    expected = (
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        + "".join(f"\\u{i:04x}" for i in range(0x0E, 0x20))  # lowercase hex: \u001b
        + '\\"\\\\/\x7f\x85\u2028\u2029é\U0001f600"'
    )
    assert canonical_json(text) == expected.encode()
    # Keys by code point: U+FFFF before U+1F600 (UTF-16 order would put it after).
    assert canonical_json({"\U0001f600": 1, "\uffff": 2}) == '{"\uffff":2,"\U0001f600":1}'.encode()
    numbers = [42, -7, 2**70, 1.0, 0.0001, -0.0, 1e15, 1e16, 1e-05, 1.2345678901234568e17]
    assert canonical_json(numbers) == (
        b"[42,-7,1180591620717411303424,1.0,0.0001,-0.0,1000000000000000.0,1e+16,1e-05,"
        b"1.2345678901234568e+17]"
    )
    with pytest.raises(InvalidArgument):
        canonical_json("\ud800")  # a lone surrogate


def test_record_round_trips_and_encodes_every_field() -> None:
    record = make_record(4, actor="support:bob", reason="ticket 7", credential_id="key-1")
    data = record.to_dict()
    assert DecisionRecord.from_dict(data) == record
    assert data["time"] == "2024-05-01T12:00:00.004000Z"
    assert data["result_count"] is None
    assert data["format"] == 1
    assert json.loads(canonical_json(data)) == data


def test_time_is_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    record = make_record(0, time=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))
    assert format_time(record.time) == "2024-05-01T12:00:00.000000Z"
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        make_record(0, time=datetime(2024, 5, 1, 12, 0))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"decision_id": "not-a-ulid"}, "decision_id"),
        ({"tenant": ""}, "tenant"),
        ({"decision": "APPLIED"}, "decision"),
        ({"kind": "admin", "decision": "ALLOWED"}, "decision"),
        ({"kind": "nope"}, "kind"),
        ({"context": {"x": float("inf")}}, ""),
    ],
)
def test_invalid_records_are_refused(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        make_record(0, **overrides)
    assert caught.value.field == field


def test_admin_change_is_applied() -> None:
    record = make_record(0, kind=DecisionKind.ADMIN, decision="APPLIED", details={"role": "x"})
    assert dict(record.details) == {"role": "x"}  # FrozenContext only equals FrozenContext


def test_json_fields_are_frozen_copies() -> None:
    context = {"a": {"b": 1}}
    record = make_record(0, context=context)
    context["a"]["b"] = 2
    assert record.to_dict()["context"] == {"a": {"b": 1}}
    assert hash(record) == hash(
        make_record(0, decision_id=record.decision_id, context={"a": {"b": 1}})
    )


def test_decision_ids_sort_with_time() -> None:
    ids = [new_decision_id(BASE_TIME + timedelta(seconds=s)) for s in range(5)]
    assert ids == sorted(ids)
    assert new_decision_id() > ids[-1]


def test_entries_link_and_self_check() -> None:
    first = LogEntry.link(make_record(0), ChainHead())
    second = LogEntry.link(make_record(1), first.head)
    assert (first.seq, second.seq, second.prev_hash) == (0, 1, first.hash)
    assert first.prev_hash == "0" * 64
    assert entry_from_line(second.line) == second


def test_redactor_replaces_only_present_paths() -> None:
    redactor = Redactor(["$.a.b", "$.c", "$.a.b.deeper"])
    record = redactor.apply(make_record(0, context={"a": {"b": 1, "k": 2}, "z": 3}))
    assert dict(record.context) == {"a": {"b": "[REDACTED]", "k": 2}, "z": 3}
    assert record.redacted == ("$.a.b",)
    untouched = make_record(0, context={"z": 3})
    assert redactor.apply(untouched) is untouched


@given(st.text(min_size=1, max_size=20))
def test_tenant_directory_names_round_trip(tenant: str) -> None:
    try:
        tenant.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates are not valid tenant ids
    name = stream_dir_name(tenant)
    assert tenant_from_dir_name(name) == tenant
    assert "/" not in name
    assert not name.startswith(".")


def test_keypair_files(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path)
    assert private.stat().st_mode & 0o777 == 0o600
    message = b"checkpoint"
    load_public_key(public).verify(load_private_key(private).sign(message), message)
    with pytest.raises(AlreadyExists):
        generate_keypair(tmp_path)
    with pytest.raises(InvalidArgument):
        load_private_key(public)
    with pytest.raises(NotFound):
        load_public_key(tmp_path / "missing.pem")


def test_utc_constant_is_used() -> None:
    assert make_record(0).time.tzinfo is UTC


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | _TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@given(
    subject=_TEXT,
    reason=st.none() | _TEXT,
    context=st.dictionaries(_TEXT, _JSON, max_size=4),
    explanation=st.dictionaries(_TEXT, _JSON, max_size=3),
    redacted=st.lists(_TEXT, max_size=3),
    seq=st.integers(min_value=-1, max_value=10**12),
)
def test_a_linked_line_is_exactly_the_canonical_json_of_its_fields(
    subject: str,
    reason: str | None,
    context: dict[str, Any],
    explanation: dict[str, Any],
    redacted: list[str],
    seq: int,
) -> None:
    # The record is encoded once and the chain splices its members: the stored bytes and
    # the hashed body must still be what encoding the whole object would give.
    record = make_record(
        3,
        subject=subject,
        reason=reason,
        actor='a"b\\c\u00e9\n' if reason else None,
        context=context,
        explanation=explanation,
        redacted=tuple(redacted),
        result_count=7,
    )
    head = ChainHead(seq, "f" * 64)
    entry = LogEntry.link(record, head)
    fields = record.to_dict()
    body = {**fields, "seq": seq + 1}
    assert entry.hash == chain_hash("f" * 64, body)
    assert entry.line == canonical_json({**body, "prev_hash": "f" * 64, "hash": entry.hash})
    assert fields["context"] == json.loads(json.dumps(context))
    assert fields["subject"] == subject
    assert entry_from_line(entry.line) == entry


def test_decision_ids_are_ulids_of_the_decision_time() -> None:
    at = datetime(2031, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    ids = {new_decision_id(at) for _ in range(200)}
    assert len(ids) == 200  # 80 random bits each
    for decision_id in ids:
        value = 0
        for digit in decision_id:
            value = value * 32 + alphabet.index(digit)
        assert len(decision_id) == 26
        assert value >> 128 == 0
        assert value >> 80 == int(at.timestamp() * 1000)


def test_decision_ids_made_together_are_ulids_of_their_time_and_distinct() -> None:
    at = datetime(2031, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    ids = new_decision_ids(500, at)
    assert len(set(ids)) == 500
    single = new_decision_id(at)
    for decision_id in ids:
        value = 0
        for digit in decision_id:
            value = value * 32 + alphabet.index(digit)
        assert len(decision_id) == 26
        assert value >> 80 == int(at.timestamp() * 1000)
        assert decision_id[:10] == single[:10]
    assert new_decision_ids(0, at) == []


@pytest.mark.parametrize("first", [0, 1021, (1 << 80) - 1])
def test_decision_ids_made_together_count_up_from_one_random_value(
    monkeypatch: pytest.MonkeyPatch, first: int
) -> None:
    # ULID's monotonic mode: unique and in item order, carries into higher digits included;
    # a random value too close to the top is brought down so that none overflows.
    at = datetime(2031, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    monkeypatch.setattr("os.urandom", lambda n: first.to_bytes(n, "big"))
    ids = new_decision_ids(10, at)

    def value(decision_id: str) -> int:
        number = 0
        for digit in decision_id:
            number = number * 32 + alphabet.index(digit)
        return number

    randoms = [value(i) & ((1 << 80) - 1) for i in ids]
    assert randoms == list(range(randoms[0], randoms[0] + 10))
    assert randoms[0] == min(first, (1 << 80) - 10)
    assert all(value(i) >> 80 == int(at.timestamp() * 1000) for i in ids)
    assert ids == sorted(ids)
