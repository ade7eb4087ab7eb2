"""The decision record and its canonical encoding.

A record is what the service decided (or, for `admin`, what it changed) with enough
context to replay it later. The canonical encoding is deterministic JSON: sorted keys,
no whitespace, UTF-8, no NaN/Infinity. The same bytes are hashed into the chain and
written as the JSON Lines record, so what an auditor reads is exactly what was hashed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from authz_service.errors import InvalidArgument, echo
from authz_service.model import EMPTY_CONTEXT, FrozenContext

__all__ = [
    "FORMAT_VERSION",
    "Decision",
    "DecisionKind",
    "DecisionRecord",
    "canonical_json",
    "format_time",
    "new_decision_id",
    "new_decision_ids",
    "parse_time",
]

FORMAT_VERSION = 1
"""Written into every line as `format`; readers refuse lines from a newer format."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# How the canonical encoder (ensure_ascii=False) writes a string; the C implementation.
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


class DecisionKind(StrEnum):
    CHECK = "check"
    CHECK_BULK_ITEM = "check_bulk_item"
    LIST_PERMISSIONS = "list_permissions"
    LOOKUP_RESOURCES = "lookup_resources"
    LOOKUP_SUBJECTS = "lookup_subjects"
    ADMIN = "admin"


class Decision(StrEnum):
    ALLOWED = "ALLOWED"
    DENIED = "DENIED"
    CONDITIONAL = "CONDITIONAL"
    APPLIED = "APPLIED"  # an administrative change that took effect


# Crockford base32, 26 characters; a first character above 7 would overflow 128 bits.
_ULID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_ADMIN_DECISIONS = frozenset({Decision.APPLIED, Decision.DENIED})
_EVAL_DECISIONS = frozenset({Decision.ALLOWED, Decision.DENIED, Decision.CONDITIONAL})


def is_decision_id(text: str) -> bool:
    return _ULID_RE.fullmatch(text) is not None


# Built once: json.dumps with non-default options builds a new encoder on every call,
# which costs about as much as the encoding itself.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: object) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8, finite numbers only."""
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        # ValueError: NaN/Infinity; UnicodeEncodeError: lone surrogates. Neither round-trips.
        raise InvalidArgument(f"value is not canonical json: {exc}") from exc


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits, e.g. `2024-05-01T12:00:00.000000Z`."""
    if value.tzinfo is None:
        raise InvalidArgument("decision time must be timezone-aware", field="time")
    # isoformat is several times cheaper than strftime, and this runs once per decision.
    if value.tzinfo is UTC:  # records hold UTC times: `+00:00` becomes `Z`
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    utc = value.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidArgument(f"`{echo(text)}` is not an rfc 3339 utc time", field="time") from exc


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # base32 digits of a ULID (no I, L, O, U)
# Every 10-bit value as its two digits: 13 lookups spell a 130-bit (26-digit) ULID.
_DIGIT_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


def new_decision_id(at: datetime | None = None) -> str:
    """A ULID whose time part is `at` (default now), so ids sort with decision time.

    48 bits of milliseconds then 80 random bits, as 26 Crockford base32 digits (the
    first carries only 3 bits). One is made per decision, so it is kept cheap.
    """
    millis = int((at or datetime.now(UTC)).timestamp() * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    pairs = _DIGIT_PAIRS
    return "".join([pairs[(value >> shift) & 0x3FF] for shift in range(120, -10, -10)])


def new_decision_ids(count: int, at: datetime | None = None) -> list[str]:
    """`count` ids of the instant `at`, made together (CheckBulk's items) as ULID's
    monotonic mode makes ids of one millisecond: one random 80-bit value, then that
    value plus 1, 2, ... They stay unique, sorted in item order, and random from call to
    call. Ids that differ only in their last 10 bits share their first 24 digits, so
    those are spelled once per run of up to 1,024 ids and each id is a concatenation."""
    millis = int((at or datetime.now(UTC)).timestamp() * 1000)
    pairs = _DIGIT_PAIRS
    # Brought down when too close to the top, so that no id overflows its 80 bits.
    first = min(int.from_bytes(os.urandom(10), "big"), (1 << 80) - count)
    value = (millis << 80) | first
    end = value + count
    ids: list[str] = []
    while value < end:
        head = "".join([pairs[(value >> shift) & 0x3FF] for shift in range(120, 0, -10)])
        run = min(end, (value | 0x3FF) + 1) - value  # up to the next carry
        low = value & 0x3FF
        ids += map(head.__add__, pairs[low : low + run])
        value += run
    return ids


def json_object(value: Mapping[str, Any], name: str) -> FrozenContext:
    # The common cases first: an ABC isinstance check costs more than building the record.
    if type(value) is FrozenContext:
        return value
    if type(value) is dict and not value:
        return EMPTY_CONTEXT
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"`{echo(name)}` must be a json object", field=name)
    try:
        if isinstance(value, FrozenContext):
            return value
        return FrozenContext(value) if value else EMPTY_CONTEXT
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"`{echo(name)}` is not json: {exc}", field=name) from exc


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision (or one administrative change) as logged.

    `time` is the evaluation time: replay evaluates relationship expiration at this
    instant, so it must be the `now` the engine used, not the time of writing.
    JSON-valued fields are frozen at construction; later changes to the caller's dicts
    do not reach the log.
    """

    decision_id: str
    time: datetime
    tenant: str
    kind: DecisionKind
    subject: str
    action: str
    resource: str
    decision: Decision
    revision: int
    schema_version: str
    server_version: str
    actor: str | None = None
    reason: str | None = None
    context: Mapping[str, Any] = field(default=EMPTY_CONTEXT)
    contextual_relationships_digest: str | None = None
    explanation: Mapping[str, Any] = field(default=EMPTY_CONTEXT)
    cache_hit: bool = False
    latency_us: int = 0
    credential_id: str | None = None
    redacted: tuple[str, ...] = ()
    result_count: int | None = None
    result_digest: str | None = None
    details: Mapping[str, Any] = field(default=EMPTY_CONTEXT)
    _segments: tuple[bytes, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # object.__setattr__ is the documented way to normalise fields of a frozen dataclass.
        if not is_decision_id(self.decision_id):
            raise InvalidArgument(
                f"`{echo(self.decision_id)}` is not a ulid",
                field="decision_id",
                value=self.decision_id,
            )
        if self.time.tzinfo is None:
            raise InvalidArgument("decision time must be timezone-aware", field="time")
        if self.time.tzinfo is not UTC:
            object.__setattr__(self, "time", self.time.astimezone(UTC))
        if not self.tenant:
            raise InvalidArgument("tenant must not be empty", field="tenant")
        try:
            # Coerced only when needed: the service passes the enums themselves.
            if type(self.kind) is not DecisionKind:
                object.__setattr__(self, "kind", DecisionKind(self.kind))
            if type(self.decision) is not Decision:
                object.__setattr__(self, "decision", Decision(self.decision))
        except ValueError as exc:
            raise InvalidArgument(f"unknown kind or decision: {exc}", field="kind") from exc
        # Admin changes are APPLIED (or DENIED when refused); evaluations never APPLIED.
        allowed = _ADMIN_DECISIONS if self.kind is DecisionKind.ADMIN else _EVAL_DECISIONS
        if self.decision not in allowed:
            raise InvalidArgument(
                f"decision `{echo(self.decision)}` does not fit kind `{echo(self.kind)}`",
                field="decision",
            )
        if self.revision < 0 or self.latency_us < 0:
            raise InvalidArgument("revision and latency_us must not be negative")
        for name in ("context", "explanation", "details"):
            object.__setattr__(self, name, json_object(getattr(self, name), name))
        if self.redacted:
            object.__setattr__(self, "redacted", tuple(sorted(set(self.redacted))))
        # Encoded once, which also validates (NaN, non-JSON values): the chain only
        # splices these bytes, so a record is serialized once on the request path.
        object.__setattr__(self, "_segments", self._encode())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as a new deep copy. Every field is present (absent optionals are
        null) so that the set of keys, and so the hash input, never depends on which
        optionals were set."""
        copy: dict[str, Any] = json.loads(b"{" + b",".join(s for s in self._segments if s) + b"}")
        return copy

    @property
    def segments(self) -> tuple[bytes, ...]:
        """The canonical JSON members of the record's fields (`"key":value,...`, sorted,
        no braces), cut into four runs where the chain's keys (`hash`, `prev_hash`, `seq`)
        sort in. Joined with the chain's members in between and wrapped in braces they
        give exactly `canonical_json` of the whole line."""
        return self._segments

    def _encode(self) -> tuple[bytes, ...]:
        """The four runs of `segments`, written out: one C call per value and no
        intermediate dict (this runs once per decision). Keys must stay sorted; a test
        compares the result with `canonical_json` of the same fields."""
        s, o, j = _encode_string, encode_optional, encode_object
        try:
            runs = self._runs(s, o, j)
        except TypeError as exc:  # a text field that is not text
            raise InvalidArgument(f"malformed decision record: {exc}") from exc
        try:
            return tuple(run.encode("utf-8") for run in runs)
        except UnicodeEncodeError as exc:  # a lone surrogate: does not round-trip
            raise InvalidArgument(f"value is not canonical json: {exc}") from exc

    def _runs(
        self,
        s: Callable[[str], str],
        o: Callable[[str | None], str],
        j: Callable[[Mapping[str, Any]], str],
    ) -> tuple[str, str, str, str]:
        return (
            f'"action":{s(self.action)},"actor":{o(self.actor)},'
            f'"cache_hit":{"true" if self.cache_hit else "false"},'
            f'"context":{j(self.context)},'
            f'"contextual_relationships_digest":{o(self.contextual_relationships_digest)},'
            f'"credential_id":{o(self.credential_id)},"decision":{s(self.decision.value)},'
            f'"decision_id":{s(self.decision_id)},"details":{j(self.details)},'
            f'"explanation":{j(self.explanation)},"format":{FORMAT_VERSION}',
            # "hash"
            f'"kind":{s(self.kind.value)},"latency_us":{int(self.latency_us)}',
            # "prev_hash"
            f'"reason":{o(self.reason)},"redacted":{_encode_list(self.redacted)},'
            f'"resource":{s(self.resource)},"result_count":{_encode_count(self.result_count)},'
            f'"result_digest":{o(self.result_digest)},"revision":{int(self.revision)},'
            f'"schema_version":{s(self.schema_version)}',
            # "seq"
            f'"server_version":{s(self.server_version)},"subject":{s(self.subject)},'
            f'"tenant":{s(self.tenant)},"time":{s(format_time(self.time))}',
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionRecord:
        """Inverse of `to_dict`; extra keys (chain fields) are ignored."""
        version = data.get("format")
        if version != FORMAT_VERSION:
            raise InvalidArgument(
                f"unsupported decision log format `{echo(version)}`", field="format"
            )
        try:
            return cls(
                decision_id=data["decision_id"],
                time=parse_time(data["time"]),
                tenant=data["tenant"],
                kind=DecisionKind(data["kind"]),
                subject=data["subject"],
                actor=data["actor"],
                reason=data["reason"],
                action=data["action"],
                resource=data["resource"],
                context=data["context"],
                contextual_relationships_digest=data["contextual_relationships_digest"],
                decision=Decision(data["decision"]),
                revision=data["revision"],
                schema_version=data["schema_version"],
                explanation=data["explanation"],
                cache_hit=data["cache_hit"],
                latency_us=data["latency_us"],
                server_version=data["server_version"],
                credential_id=data["credential_id"],
                redacted=tuple(data["redacted"]),
                result_count=data["result_count"],
                result_digest=data["result_digest"],
                details=data["details"],
            )
        except KeyError as exc:
            raise InvalidArgument(f"decision record lacks `{echo(exc.args[0])}`") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed decision record: {exc}") from exc


def encode_optional(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


def _encode_list(values: tuple[str, ...]) -> str:
    return f"[{','.join(_encode_string(v) for v in values)}]"


def _encode_count(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def encode_object(value: Mapping[str, Any]) -> str:
    """`canonical_json` of a FrozenContext, as text. Its own canonical text differs from
    ours only by \\u escapes (it escapes non-ASCII) and NaN/Infinity (it allows them):
    it is taken as is when neither occurs, which is nearly always."""
    assert isinstance(value, FrozenContext)  # __post_init__ froze every JSON field
    text = value.canonical
    if "\\u" not in text and "NaN" not in text and "Infinity" not in text:
        return text
    return canonical_json(value.to_dict()).decode("utf-8")
