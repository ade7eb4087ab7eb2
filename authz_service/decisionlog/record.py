"""The decision record and its canonical encoding.

A record is what the service decided (or, for `admin`, what it changed) with enough
context to replay it later. The canonical encoding is deterministic JSON: sorted keys,
no whitespace, UTF-8, no NaN/Infinity. The same bytes are hashed into the chain and
written as the JSON Lines record, so what an auditor reads is exactly what was hashed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ulid import ULID

from authz_service.errors import InvalidArgument
from authz_service.model import FrozenContext

__all__ = [
    "FORMAT_VERSION",
    "Decision",
    "DecisionKind",
    "DecisionRecord",
    "canonical_json",
    "format_time",
    "new_decision_id",
    "parse_time",
]

FORMAT_VERSION = 1
"""Written into every line as `format`; readers refuse lines from a newer format."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


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
_ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
_ADMIN_DECISIONS = frozenset({Decision.APPLIED, Decision.DENIED})
_EVAL_DECISIONS = frozenset({Decision.ALLOWED, Decision.DENIED, Decision.CONDITIONAL})


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
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidArgument(f"`{text}` is not an rfc 3339 utc time", field="time") from exc


def new_decision_id(at: datetime | None = None) -> str:
    """A ULID whose time part is `at` (default now), so ids sort with decision time."""
    return str(ULID.from_datetime(at or datetime.now(UTC)))


def _json_object(value: Mapping[str, Any], name: str) -> FrozenContext:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"`{name}` must be a json object", field=name)
    try:
        return value if isinstance(value, FrozenContext) else FrozenContext(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"`{name}` is not json: {exc}", field=name) from exc


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
    context: Mapping[str, Any] = field(default_factory=FrozenContext)
    contextual_relationships_digest: str | None = None
    explanation: Mapping[str, Any] = field(default_factory=FrozenContext)
    cache_hit: bool = False
    latency_us: int = 0
    credential_id: str | None = None
    redacted: tuple[str, ...] = ()
    result_count: int | None = None
    result_digest: str | None = None
    details: Mapping[str, Any] = field(default_factory=FrozenContext)
    _json: dict[str, Any] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # object.__setattr__ is the documented way to normalise fields of a frozen dataclass.
        if not _ULID_RE.match(self.decision_id):
            raise InvalidArgument(
                f"`{self.decision_id}` is not a ulid", field="decision_id", value=self.decision_id
            )
        if self.time.tzinfo is None:
            raise InvalidArgument("decision time must be timezone-aware", field="time")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        if not self.tenant:
            raise InvalidArgument("tenant must not be empty", field="tenant")
        try:
            object.__setattr__(self, "kind", DecisionKind(self.kind))
            object.__setattr__(self, "decision", Decision(self.decision))
        except ValueError as exc:
            raise InvalidArgument(f"unknown kind or decision: {exc}", field="kind") from exc
        # Admin changes are APPLIED (or DENIED when refused); evaluations never APPLIED.
        allowed = _ADMIN_DECISIONS if self.kind is DecisionKind.ADMIN else _EVAL_DECISIONS
        if self.decision not in allowed:
            raise InvalidArgument(
                f"decision `{self.decision}` does not fit kind `{self.kind}`", field="decision"
            )
        if self.revision < 0 or self.latency_us < 0:
            raise InvalidArgument("revision and latency_us must not be negative")
        for name in ("context", "explanation", "details"):
            object.__setattr__(self, name, _json_object(getattr(self, name), name))
        object.__setattr__(self, "redacted", tuple(sorted(set(self.redacted))))
        # Built once and validated once (NaN, non-JSON values): the writer encodes it on
        # the request path and should not rebuild it there.
        data = self._build_json()
        canonical_json(data)
        object.__setattr__(self, "_json", data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as a new deep copy. Every field is present (absent optionals are
        null) so that the set of keys, and so the hash input, never depends on which
        optionals were set."""
        copy: dict[str, Any] = json.loads(canonical_json(self._json))
        return copy

    def json_fields(self) -> dict[str, Any]:
        """`to_dict` without the copy, for the chain. Shared: callers must not mutate it
        (a shallow copy that adds keys is fine)."""
        return self._json

    def _build_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "decision_id": self.decision_id,
            "time": format_time(self.time),
            "tenant": self.tenant,
            "kind": str(self.kind),
            "subject": self.subject,
            "actor": self.actor,
            "reason": self.reason,
            "action": self.action,
            "resource": self.resource,
            "context": _as_dict(self.context),
            "contextual_relationships_digest": self.contextual_relationships_digest,
            "decision": str(self.decision),
            "revision": self.revision,
            "schema_version": self.schema_version,
            "explanation": _as_dict(self.explanation),
            "cache_hit": self.cache_hit,
            "latency_us": self.latency_us,
            "server_version": self.server_version,
            "credential_id": self.credential_id,
            "redacted": list(self.redacted),
            "result_count": self.result_count,
            "result_digest": self.result_digest,
            "details": _as_dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecisionRecord:
        """Inverse of `to_dict`; extra keys (chain fields) are ignored."""
        version = data.get("format")
        if version != FORMAT_VERSION:
            raise InvalidArgument(f"unsupported decision log format `{version}`", field="format")
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
            raise InvalidArgument(f"decision record lacks `{exc.args[0]}`") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed decision record: {exc}") from exc


def _as_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    # Fields are always FrozenContext after __post_init__; its to_dict is a deep copy.
    assert isinstance(value, FrozenContext)
    return value.to_dict()
