"""Frozen domain values shared by every layer.

Protobuf messages stop at the API layer; everything below speaks these types. They are
immutable and hashable so that they can be cache keys and set members.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from authz_service.errors import InvalidArgument, echo
from authz_service.surrogates import lone_surrogate

__all__ = [
    "NO_RELATION",
    "WILDCARD",
    "CaveatRef",
    "Consistency",
    "ConsistencyMode",
    "FrozenContext",
    "ObjectRef",
    "Relationship",
    "RelationshipFilter",
    "RelationshipKind",
    "RelationshipUpdate",
    "ReplayedRevision",
    "Revision",
    "SubjectRef",
    "UpdateOp",
    "parse_object",
    "parse_relationship",
    "parse_subject",
    "validate_object_id",
    "validate_type_name",
]

Revision = int
"""A per-tenant, commit-ordered revision number. 0 means "nothing written yet"."""


class ReplayedRevision(int):
    """The revision of a write that had already been applied under the same idempotency
    key: the call wrote nothing. Behaves as the plain revision everywhere else."""


WILDCARD = "*"
"""Subject id meaning "every subject of this type"."""

NO_RELATION = ""
"""Subject relation meaning "the object itself" (SpiceDB writes it `...` or omits it)."""

_TYPE_SEGMENT = r"[a-z][a-z0-9_]{1,62}[a-z0-9]"
# Validators use fullmatch: `$` also matches before a final newline, which would let
# `doc\n` through as a name distinct from `doc`.
TYPE_RE = re.compile(rf"(?:{_TYPE_SEGMENT}/)*{_TYPE_SEGMENT}")
ID_RE = re.compile(r"[a-zA-Z0-9/_|\-=+]{1,1024}")
RELATION_RE = re.compile(_TYPE_SEGMENT)

# The rules as error messages state them (and proto/authz/v1/core.proto documents them).
TYPE_RULE = (
    "segments of 3-64 characters of [a-z0-9_], starting with a letter and not ending in `_`, "
    "joined by `/`"
)
ID_RULE = "1-1024 characters of [A-Za-z0-9/_|=+-]"
RELATION_RULE = "3-64 characters of [a-z0-9_], starting with a letter and not ending in `_`"


# Type and relation names repeat on every request and are few: remember the valid ones
# (bounded, so hostile input cannot grow it without limit).
_VALID_TYPES: set[str] = set()
_VALID_RELATIONS: set[str] = set()
_MAX_REMEMBERED = 10_000


def _valid(pattern: re.Pattern[str], known: set[str], value: str) -> bool:
    if value in known:
        return True
    if not pattern.fullmatch(value):
        return False
    if len(known) < _MAX_REMEMBERED:
        known.add(value)
    return True


def validate_type_name(value: str, field_name: str) -> str:
    if not _valid(TYPE_RE, _VALID_TYPES, value):
        raise InvalidArgument(
            f"`{echo(value)}` is not a valid type name: {TYPE_RULE}", field=field_name, value=value
        )
    return value


def validate_object_id(value: str, field_name: str, *, allow_wildcard: bool = False) -> str:
    if value == WILDCARD and allow_wildcard:
        return value
    if not ID_RE.fullmatch(value):
        shown = echo(value) if value else "(empty)"
        raise InvalidArgument(
            f"`{shown}` is not a valid object id: {ID_RULE}", field=field_name, value=value
        )
    return value


def validate_relation_name(value: str, field_name: str) -> str:
    if not _valid(RELATION_RE, _VALID_RELATIONS, value):
        raise InvalidArgument(
            f"`{echo(value)}` is not a valid relation or permission name: {RELATION_RULE}",
            field=field_name,
            value=value,
        )
    return value


class FrozenContext(Mapping[str, Any]):
    """An immutable, hashable JSON object (caveat context).

    Hash and equality use the canonical JSON encoding, so two contexts written with
    different key orders are the same cache key.
    """

    __slots__ = ("_canonical", "_data")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self._canonical = json.dumps(self._data, sort_keys=True, separators=(",", ":"))

    @property
    def canonical(self) -> str:
        return self._canonical

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(self._canonical)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenContext):
            return self._canonical == other._canonical
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenContext({self._canonical})"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self._canonical)  # type: ignore[no-any-return]


EMPTY_CONTEXT = FrozenContext()


@dataclass(frozen=True, slots=True)
class ObjectRef:
    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """A subject: an object (`relation == NO_RELATION`), a subject set or a wildcard."""

    type: str
    id: str
    relation: str = NO_RELATION

    @property
    def object(self) -> ObjectRef:
        return ObjectRef(self.type, self.id)

    @property
    def is_wildcard(self) -> bool:
        return self.id == WILDCARD

    def __str__(self) -> str:
        base = f"{self.type}:{self.id}"
        return f"{base}#{self.relation}" if self.relation else base


@dataclass(frozen=True, slots=True)
class CaveatRef:
    """A caveat named on a relationship, with the context stored alongside it."""

    name: str
    context: FrozenContext = field(default_factory=FrozenContext)

    def __str__(self) -> str:
        if not self.context:
            return self.name
        return f"{self.name}:{self.context.canonical}"


@dataclass(frozen=True, slots=True)
class Relationship:
    """`resource#relation@subject[caveat][expiration]`.

    Identity is (resource, relation, subject): a TOUCH replaces caveat and expiration.
    """

    resource: ObjectRef
    relation: str
    subject: SubjectRef
    caveat: CaveatRef | None = None
    expires_at: datetime | None = None

    @property
    def key(self) -> tuple[ObjectRef, str, SubjectRef]:
        return (self.resource, self.relation, self.subject)

    def __str__(self) -> str:
        text = f"{self.resource}#{self.relation}@{self.subject}"
        if self.caveat is not None:
            text += f"[{self.caveat}]"
        if self.expires_at is not None:
            text += f"[expiration:{self.expires_at.isoformat().replace('+00:00', 'Z')}]"
        return text


@dataclass(frozen=True, slots=True)
class RelationshipKind:
    """The shape of a relationship as the schema's allowed subject types see it
    (`relation viewer: user:* with cav and expiration`): what WriteSchema compares to
    refuse changes that would orphan stored relationships."""

    resource_type: str
    relation: str
    subject_type: str
    subject_relation: str = NO_RELATION
    wildcard: bool = False
    caveat: str | None = None
    expiring: bool = False

    @classmethod
    def of(cls, rel: Relationship) -> RelationshipKind:
        return cls(
            rel.resource.type,
            rel.relation,
            rel.subject.type,
            rel.subject.relation,
            rel.subject.id == WILDCARD,
            rel.caveat.name if rel.caveat is not None else None,
            rel.expires_at is not None,
        )


class UpdateOp(Enum):
    CREATE = "create"  # fails if the relationship exists
    TOUCH = "touch"  # create or replace; idempotent
    DELETE = "delete"  # no error if absent; idempotent


@dataclass(frozen=True, slots=True)
class RelationshipUpdate:
    op: UpdateOp
    relationship: Relationship


@dataclass(frozen=True, slots=True)
class RelationshipFilter:
    """Selects relationships. `None` means "any" for every field.

    `subject_relation == NO_RELATION` selects subjects that are plain objects;
    `subject_ids` may contain `WILDCARD` to select wildcard relationships.
    `spare_resource_prefix` leaves out resource types starting with it: the service's
    internal bookkeeping (`__`) when a caller's filter names no resource type.
    """

    resource_type: str | None = None
    resource_ids: tuple[str, ...] | None = None
    relation: str | None = None
    subject_type: str | None = None
    subject_ids: tuple[str, ...] | None = None
    subject_relation: str | None = None
    spare_resource_prefix: str | None = None

    def matches(self, rel: Relationship) -> bool:
        return (
            (self.resource_type is None or rel.resource.type == self.resource_type)
            and (
                self.spare_resource_prefix is None
                or not rel.resource.type.startswith(self.spare_resource_prefix)
            )
            and (self.resource_ids is None or rel.resource.id in self.resource_ids)
            and (self.relation is None or rel.relation == self.relation)
            and (self.subject_type is None or rel.subject.type == self.subject_type)
            and (self.subject_ids is None or rel.subject.id in self.subject_ids)
            and (self.subject_relation is None or rel.subject.relation == self.subject_relation)
        )


class ConsistencyMode(Enum):
    MINIMIZE_LATENCY = "minimize_latency"
    AT_LEAST_AS_FRESH = "at_least_as_fresh"
    AT_EXACT_SNAPSHOT = "at_exact_snapshot"
    FULLY_CONSISTENT = "fully_consistent"


@dataclass(frozen=True, slots=True)
class Consistency:
    mode: ConsistencyMode = ConsistencyMode.MINIMIZE_LATENCY
    revision: Revision | None = None  # required for AT_LEAST_AS_FRESH and AT_EXACT_SNAPSHOT
    schema_seq: int = 0  # from the token: decide with this schema (`SchemaRecord.seq`) or newer


# --- text forms -------------------------------------------------------------------------

_OBJECT_RE = re.compile(r"(?P<type>[^:#@\[\]\s]+):(?P<id>[^#@\[\]\s]+)")
_SUBJECT_RE = re.compile(r"(?P<type>[^:#@\[\]\s]+):(?P<id>[^#@\[\]\s]+)(?:#(?P<rel>[^@\[\]\s]+))?")


def parse_object(text: str, field_name: str = "resource") -> ObjectRef:
    """Parse `type:id`."""
    match = _OBJECT_RE.fullmatch(text.strip())
    if not match:
        raise InvalidArgument(
            f"`{echo(text)}` is not of the form `type:id`", field=field_name, value=text
        )
    return ObjectRef(
        validate_type_name(match["type"], field_name),
        validate_object_id(match["id"], field_name),
    )


def parse_subject(text: str, field_name: str = "subject") -> SubjectRef:
    """Parse `type:id`, `type:id#relation`, `type:id#...` or `type:*`."""
    match = _SUBJECT_RE.fullmatch(text.strip())
    if not match:
        raise InvalidArgument(
            f"`{echo(text)}` is not of the form `type:id[#relation]`", field=field_name, value=text
        )
    rel = match["rel"] or NO_RELATION
    if rel == "...":
        rel = NO_RELATION
    if rel:
        validate_relation_name(rel, field_name)
    subject_id = validate_object_id(match["id"], field_name, allow_wildcard=True)
    if subject_id == WILDCARD and rel:
        raise InvalidArgument(
            f"wildcard subject `{echo(text)}` cannot have a relation", field=field_name, value=text
        )
    return SubjectRef(validate_type_name(match["type"], field_name), subject_id, rel)


_REL_RE = re.compile(
    r"(?P<resource>[^#@\s]+)#(?P<relation>[^@\s]+)@(?P<subject>[^\[\s]+)(?P<tail>.*)"
)
_JSON = json.JSONDecoder()


def parse_relationship(text: str, field_name: str = "relationship") -> Relationship:
    """Parse `res:id#rel@subj:id[#rel][caveat[:{json}]][expiration:RFC3339]`."""
    source = text.strip()
    match = _REL_RE.fullmatch(source)
    if not match:
        raise InvalidArgument(
            f"`{echo(text)}` is not of the form `type:id#relation@type:id[#relation]`",
            field=field_name,
            value=text,
        )
    resource = parse_object(match["resource"], field_name)
    relation = validate_relation_name(match["relation"], field_name)
    subject = parse_subject(match["subject"], field_name)
    caveat: CaveatRef | None = None
    expires_at: datetime | None = None
    for name, rest in _bracket_groups(match["tail"], field_name, text):
        if name == "expiration":
            expires_at = _parse_timestamp(rest, field_name, text)
            continue
        context: dict[str, Any] = {}
        if rest:
            try:
                loaded = json.loads(rest, parse_constant=_no_constant)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(
                    f"caveat context `{echo(rest)}` is not valid JSON: {exc.msg}",
                    field=field_name,
                    value=text,
                ) from None
            if not isinstance(loaded, dict):
                raise InvalidArgument(
                    f"caveat context `{echo(rest)}` must be a JSON object",
                    field=field_name,
                    value=text,
                )
            problem = lone_surrogate(loaded, "caveat context")
            if problem is not None:
                raise InvalidArgument(problem, field=field_name, value=text)
            context = loaded
        caveat = CaveatRef(name, FrozenContext(context))
    return Relationship(resource, relation, subject, caveat, expires_at)


def _no_constant(name: str) -> Any:
    # json accepts NaN and Infinity; JSON (and a caveat context) has no such numbers.
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _bracket_groups(tail: str, field_name: str, text: str) -> list[tuple[str, str]]:
    """Split `[name][name:{json}][expiration:ts]`; JSON may itself contain brackets."""
    groups: list[tuple[str, str]] = []
    pos = 0
    while pos < len(tail):
        if tail[pos] != "[":
            raise InvalidArgument(
                f"unexpected `{tail[pos:]}` after the subject", field=field_name, value=text
            )
        stop = pos + 1
        while stop < len(tail) and tail[stop] not in ":]":
            stop += 1
        name = tail[pos + 1 : stop]
        if stop < len(tail) and tail[stop] == ":" and tail[stop + 1 : stop + 2] == "{":
            try:
                _, json_end = _JSON.raw_decode(tail, stop + 1)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(
                    f"caveat context for `{echo(name)}` is not valid JSON: {exc.msg}",
                    field=field_name,
                    value=text,
                ) from None
            rest, stop = tail[stop + 1 : json_end], json_end
        elif stop < len(tail) and tail[stop] == ":":
            close = tail.find("]", stop)
            close = len(tail) if close < 0 else close
            rest, stop = tail[stop + 1 : close], close
        else:
            rest = ""
        if stop >= len(tail) or tail[stop] != "]":
            raise InvalidArgument(f"unclosed `[` in `{echo(text)}`", field=field_name, value=text)
        groups.append((name, rest))
        pos = stop + 1
    return groups


def _parse_timestamp(value: str, field_name: str, text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"expiration `{echo(value)}` is not an RFC 3339 timestamp", field=field_name, value=text
        ) from None
    if parsed.tzinfo is None:
        raise InvalidArgument(
            f"expiration `{echo(value)}` needs a time zone", field=field_name, value=text
        )
    return parsed
