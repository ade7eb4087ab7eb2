"""A Check's record encoded straight from its fields stores the bytes `DecisionRecord`
stores, and refuses what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz_service.decisionlog import (
    ChainHead,
    Decision,
    DecisionKind,
    DecisionRecord,
    EncodedCheck,
    LogEntry,
    canonical_json,
    encode_check,
    new_decision_id,
)
from authz_service.decisionlog.chain import entry_from_line
from authz_service.decisionlog.redact import Redactor
from authz_service.errors import InvalidArgument
from authz_service.model import FrozenContext

# Text a request can carry: any code point but a lone surrogate, with the ones JSON
# must escape (quotes, backslashes, control characters) and non-ASCII made likely.
_ODD = st.sampled_from(['"', "\\", "\n", "\x00", "\x1f", "\x7f", "\u2028", "é", "日本", "🔑"])
_TEXT = st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=4) | _ODD).map(
    "".join
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | _TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
# Contexts that redaction paths below may or may not hit.
_CONTEXT = st.dictionaries(
    st.sampled_from(["ssn", "card", "ip"]) | _TEXT,
    _JSON | st.fixed_dictionaries({"number": _JSON}),
    max_size=4,
)
_TIME = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(0)), timezone(timedelta(hours=-7))]),
)
_AGENTS = st.lists(_TEXT, max_size=3).map(lambda agents: {"agents": agents} if agents else {})
_EXPLANATION = (
    st.just({})
    | st.fixed_dictionaries(
        {"error": st.sampled_from(["Unavailable", "DeadlineExceeded"]), "message": _TEXT}
    )
    | st.fixed_dictionaries({"missing_context": st.lists(_TEXT, max_size=3)})
    | st.dictionaries(_TEXT, _JSON, max_size=3)
)


def _check_fields(draw: st.DrawFn) -> dict[str, Any]:
    time = draw(_TIME)
    return {
        "decision_id": new_decision_id(time),
        "time": time,
        "tenant": draw(_TEXT.filter(bool)),
        "kind": draw(st.sampled_from([DecisionKind.CHECK, DecisionKind.CHECK_BULK_ITEM])),
        "subject": draw(_TEXT),
        "action": draw(_TEXT),
        "resource": draw(_TEXT),
        "decision": draw(st.sampled_from(["ALLOWED", "DENIED", "CONDITIONAL"])),
        "revision": draw(st.integers(min_value=0, max_value=2**63)),
        "schema_version": draw(_TEXT),
        "server_version": draw(_TEXT),
        "actor": draw(st.none() | _TEXT),
        "reason": draw(st.none() | _TEXT),
        "credential_id": draw(st.none() | _TEXT),
        "context": FrozenContext(draw(_CONTEXT)),
        "contextual_relationships_digest": draw(st.none() | st.just("ab" * 32)),
        "explanation": draw(_EXPLANATION),
        "cache_hit": draw(st.booleans()),
        "latency_us": draw(st.integers(min_value=0, max_value=10**9)),
        "details": draw(_AGENTS),
    }


check_fields = st.composite(_check_fields)


@given(
    fields=check_fields(),
    paths=st.lists(st.sampled_from(["$.ssn", "$.card.number", "$.ip", "$.nope"]), max_size=3),
    seq=st.integers(min_value=-1, max_value=10**12),
)
def test_an_encoded_check_stores_the_bytes_of_its_decision_record(
    fields: dict[str, Any], paths: list[str], seq: int
) -> None:
    # The writer redacts, then links: both paths go through the same two steps.
    redact = Redactor(paths).apply
    head = ChainHead(seq, "c" * 64)
    record = redact(DecisionRecord(**fields))
    encoded = redact(encode_check(**fields))
    expected = LogEntry.link(record, head)
    entry = LogEntry.link(encoded, head)
    assert entry.line == expected.line
    assert entry.hash == expected.hash
    assert entry == expected
    assert entry.tenant == fields["tenant"]
    # Read back from its line, it is the record the dataclass path holds.
    assert entry.record == record
    assert entry_from_line(entry.line) == entry
    whole = {**record.to_dict(), "seq": seq + 1, "prev_hash": "c" * 64, "hash": entry.hash}
    assert entry.line == canonical_json(whole)


@given(fields=check_fields())
def test_an_encoded_check_decodes_to_its_decision_record(fields: dict[str, Any]) -> None:
    encoded = encode_check(**fields)
    assert isinstance(encoded, EncodedCheck)
    assert encoded.decode() == DecisionRecord(**fields)
    assert encoded.decode().segments == encoded.segments
    assert encoded.has_context == bool(fields["context"])


def _valid() -> dict[str, Any]:
    at = datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    return {
        "decision_id": new_decision_id(at),
        "time": at,
        "tenant": "acme",
        "kind": DecisionKind.CHECK,
        "subject": "user:alice",
        "action": "view",
        "resource": "document:d1",
        "decision": "ALLOWED",
        "revision": 7,
        "schema_version": "s1",
        "server_version": "v",
    }


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"decision_id": "not-a-ulid"}, "decision_id"),
        ({"decision_id": "Z" * 26}, "decision_id"),  # would overflow 128 bits
        ({"tenant": ""}, "tenant"),
        ({"time": datetime(2030, 1, 2)}, "time"),  # naive
        ({"decision": "APPLIED"}, "decision"),
        ({"decision": "MAYBE"}, None),
        ({"kind": DecisionKind.ADMIN}, None),
        ({"revision": -1}, ""),
        ({"latency_us": -1}, ""),
        ({"context": {"x": float("nan")}}, ""),
        ({"context": FrozenContext({"x": float("inf")})}, ""),
        ({"explanation": {"x": float("nan")}}, ""),
        ({"details": ["not", "an", "object"]}, "details"),
        ({"subject": "a\ud800b"}, ""),  # a lone surrogate
        ({"context": {"k": "\udfff"}}, ""),
        ({"resource": None}, ""),  # not text
        ({"actor": 5}, ""),
    ],
)
def test_an_encoded_check_refuses_what_a_decision_record_refuses(
    overrides: dict[str, Any], field: str | None
) -> None:
    fields = {**_valid(), **overrides}
    with pytest.raises(InvalidArgument) as by_record:
        DecisionRecord(**fields)
    with pytest.raises(InvalidArgument) as encoding:
        encode_check(**fields)
    if field is not None:  # an unknown kind or decision: both refuse, with their own field
        assert (encoding.value.field, by_record.value.field) == (field, field)


def test_an_encoded_checks_enums_and_plain_text_encode_alike() -> None:
    fields = _valid()
    as_text = encode_check(**{**fields, "decision": "DENIED"})
    as_enum = encode_check(**{**fields, "decision": Decision.DENIED})
    assert as_text.segments[0] == as_enum.segments[0]
    assert b'"decision":"DENIED"' in as_text.segments[0]
    assert as_text.segments[1].startswith(b'"kind":"check",')
