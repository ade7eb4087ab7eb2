"""Roles, bindings and subject status as internal relationships.

They live in the tenant's relationship store, so they get revisions, consistency tokens,
atomic writes and exact-snapshot replay for free. Their types start with `__`, which no
schema type can (type names start with a letter), so user input can never name them; the
relationships API, Read and Watch never show them.

    __role:R#defined@__role:R[__meta:{description, update_time}]   custom role R exists
    __role:R#grants@__perm:<type>.<name>                            R grants <type>.<name>
    __binding:B#role@__role:R[__meta:{create_time}]                 binding B gives role R
    __binding:B#subject@<subject>                                   ... to <subject>
    __binding:B#scope@<type>:<id> | __binding:B#scope@__tenant:all  ... on a resource | everywhere
    __status:<type>#suspended@<type>:<id>[__meta:{reason, update_time}]
    __status:<type>#deprovisioned@<type>:<id>[__meta:{...}]
    __active:<type>#reactivated@<type>:<id>[__meta:{...}]           last reactivation

`__meta` rides in the caveat column of one relationship per role, binding and status; it
is metadata for the admin API and is never evaluated.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from authz_service.engine import BindingRef
from authz_service.model import CaveatRef, FrozenContext, ObjectRef, Relationship, SubjectRef

__all__ = [
    "ACTIVE",
    "BINDING",
    "PERM",
    "ROLE",
    "STATUS",
    "TENANT_WIDE",
    "Binding",
    "CustomRole",
    "Pair",
    "StatusRecord",
    "SubjectStatus",
    "binding_id",
    "binding_relationships",
    "bindings_from",
    "role_relationships",
    "roles_from",
    "status_from",
    "status_relationship",
]

ROLE = "__role"
PERM = "__perm"
BINDING = "__binding"
TENANT = "__tenant"
STATUS = "__status"
ACTIVE = "__active"
META = "__meta"

DEFINED = "defined"
GRANTS = "grants"
ROLE_OF = "role"
SUBJECT_OF = "subject"
SCOPE_OF = "scope"
REACTIVATED = "reactivated"

TENANT_WIDE = ObjectRef(TENANT, "all")
"""The scope of a tenant-wide binding."""

Pair = tuple[str, str]
"""(definition, permission or relation), written `definition.name` in roles."""


def _meta(**fields: Any) -> CaveatRef:
    return CaveatRef(META, FrozenContext({k: v for k, v in fields.items() if v is not None}))


def _meta_of(rel: Relationship) -> FrozenContext:
    return rel.caveat.context if rel.caveat is not None else FrozenContext()


def _time(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- roles --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomRole:
    name: str
    description: str
    permissions: tuple[Pair, ...]
    update_time: datetime | None = None


def role_relationships(role: CustomRole) -> list[Relationship]:
    obj = ObjectRef(ROLE, role.name)
    marker = Relationship(
        obj,
        DEFINED,
        SubjectRef(ROLE, role.name),
        _meta(description=role.description, update_time=_iso(role.update_time)),
    )
    grants = [
        Relationship(obj, GRANTS, SubjectRef(PERM, f"{type_name}.{name}"))
        for type_name, name in role.permissions
    ]
    return [marker, *grants]


def roles_from(rels: Iterable[Relationship]) -> dict[str, CustomRole]:
    """Custom roles from their relationships (any order); grants without a marker (a role
    deleted concurrently) are ignored."""
    markers: dict[str, Relationship] = {}
    grants: dict[str, list[Pair]] = defaultdict(list)
    for rel in rels:
        if rel.resource.type != ROLE:
            continue
        if rel.relation == DEFINED:
            markers[rel.resource.id] = rel
        elif rel.relation == GRANTS and rel.subject.type == PERM:
            type_name, _, name = rel.subject.id.partition(".")
            grants[rel.resource.id].append((type_name, name))
    roles = {}
    for name, marker in markers.items():
        meta = _meta_of(marker)
        roles[name] = CustomRole(
            name,
            str(meta.get("description", "")),
            tuple(sorted(grants[name])),
            _time(meta.get("update_time")),
        )
    return roles


# --- bindings -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Binding:
    """A role given to a subject, on `scope` and below it, or tenant-wide (`scope` None)."""

    binding_id: str
    role: str
    subject: SubjectRef
    scope: ObjectRef | None
    create_time: datetime | None = None

    def ref(self) -> BindingRef:
        return BindingRef(
            self.binding_id, self.role, str(self.subject), str(self.scope) if self.scope else ""
        )

    def describe(self) -> str:
        where = f"on `{self.scope}`" if self.scope else "tenant-wide"
        return f"binding `{self.binding_id}`: role `{self.role}` to `{self.subject}` {where}"


def binding_id(tenant: str, role: str, subject: SubjectRef, scope: ObjectRef | None) -> str:
    """Derived from the content, so that an identical binding has the same id and its
    CREATE fails atomically with AlreadyExists."""
    text = f"{tenant}\n{role}\n{subject}\n{scope or ''}"
    return "b" + hashlib.sha256(text.encode()).hexdigest()[:24]


def binding_relationships(binding: Binding) -> list[Relationship]:
    obj = ObjectRef(BINDING, binding.binding_id)
    scope = binding.scope or TENANT_WIDE
    return [
        Relationship(
            obj,
            ROLE_OF,
            SubjectRef(ROLE, binding.role),
            _meta(create_time=_iso(binding.create_time)),
        ),
        Relationship(obj, SUBJECT_OF, binding.subject),
        Relationship(obj, SCOPE_OF, SubjectRef(scope.type, scope.id)),
    ]


def bindings_from(rels: Iterable[Relationship]) -> dict[str, Binding]:
    """Complete bindings (role, subject and scope present) from their relationships."""
    parts: dict[str, dict[str, Relationship]] = defaultdict(dict)
    for rel in rels:
        if rel.resource.type == BINDING:
            parts[rel.resource.id][rel.relation] = rel
    found = {}
    for ident, rels_of in parts.items():
        role, subject, scope = rels_of.get(ROLE_OF), rels_of.get(SUBJECT_OF), rels_of.get(SCOPE_OF)
        if role is None or subject is None or scope is None:
            continue
        target = scope.subject.object
        found[ident] = Binding(
            ident,
            role.subject.id,
            subject.subject,
            None if target == TENANT_WIDE else target,
            _time(_meta_of(role).get("create_time")),
        )
    return found


# --- subject status -----------------------------------------------------------------------


class SubjectStatus(Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEPROVISIONED = "deprovisioned"


_PRECEDENCE = {SubjectStatus.ACTIVE: 0, SubjectStatus.SUSPENDED: 1, SubjectStatus.DEPROVISIONED: 2}


@dataclass(frozen=True, slots=True)
class StatusRecord:
    status: SubjectStatus = SubjectStatus.ACTIVE
    update_time: datetime | None = None
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.status is SubjectStatus.ACTIVE


def status_relationship(
    subject: ObjectRef, status: SubjectStatus, reason: str, at: datetime
) -> Relationship:
    if status is SubjectStatus.ACTIVE:
        resource, relation = ObjectRef(ACTIVE, subject.type), REACTIVATED
    else:
        resource, relation = ObjectRef(STATUS, subject.type), status.value
    return Relationship(
        resource,
        relation,
        SubjectRef(subject.type, subject.id),
        _meta(reason=reason, update_time=_iso(at)),
    )


def status_from(rels: Iterable[Relationship]) -> StatusRecord:
    """The status the relationships of one subject say: deprovisioned over suspended over
    active; the record of an active subject is its last reactivation, if any."""
    best: tuple[int, Relationship] | None = None
    for rel in rels:
        if rel.resource.type == STATUS:
            rank = _PRECEDENCE.get(_status(rel.relation), 0)
        elif rel.resource.type == ACTIVE:
            rank = 0
        else:
            continue
        if best is None or rank > best[0]:
            best = (rank, rel)
    if best is None:
        return StatusRecord()
    rel = best[1]
    meta = _meta_of(rel)
    status = _status(rel.relation) if rel.resource.type == STATUS else SubjectStatus.ACTIVE
    return StatusRecord(status, _time(meta.get("update_time")), str(meta.get("reason", "")))


def _status(relation: str) -> SubjectStatus:
    try:
        return SubjectStatus(relation)
    except ValueError:
        return SubjectStatus.ACTIVE
