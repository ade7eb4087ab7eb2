"""SQL fragments shared by readers and writers, and row <-> domain conversion.

Statements are built only from the fields a filter sets, so each distinct shape is its
own prepared statement (asyncpg caches them per connection) and the planner sees plain
equality predicates it can match to an index, instead of `($1 IS NULL OR col = $1)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from authz_service.model import (
    CaveatRef,
    FrozenContext,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    SubjectRef,
)

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "KEY_COLUMNS",
    "REL_COLUMNS",
    "Params",
    "aware",
    "filter_clauses",
    "relationship_from_row",
    "relationship_values",
    "sort_values",
]

KEY_COLUMNS = "resource_type, resource_id, relation, subject_type, subject_id, subject_relation"
"""Identity of a relationship within a tenant, in read order."""

REL_COLUMNS = f"{KEY_COLUMNS}, caveat_name, caveat_context::text AS caveat_context, expires_at"
"""What a read returns; the context travels as JSON text (no per-connection codec)."""


@dataclass(slots=True)
class Params:
    """Positional parameters of a statement being built."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"


def filter_clauses(flt: RelationshipFilter, params: Params, prefix: str = "") -> list[str]:
    """SQL conditions for the fields `flt` sets (None means "any")."""
    clauses: list[str] = []
    for column, value in (
        ("resource_type", flt.resource_type),
        ("relation", flt.relation),
        ("subject_type", flt.subject_type),
        ("subject_relation", flt.subject_relation),
    ):
        if value is not None:
            clauses.append(f"{prefix}{column} = {params.add(value)}")
    for column, ids in (("resource_id", flt.resource_ids), ("subject_id", flt.subject_ids)):
        if ids is None:
            continue
        if len(ids) == 1:
            # the common check case: a plain equality gives the best generic plan
            clauses.append(f"{prefix}{column} = {params.add(ids[0])}")
        else:
            clauses.append(f"{prefix}{column} = ANY({params.add(list(ids), '::text[]')})")
    if flt.spare_resource_prefix is not None:
        # starts_with, not LIKE: `_` is a LIKE wildcard and the prefix is `__`.
        value = params.add(flt.spare_resource_prefix)
        clauses.append(f"NOT starts_with({prefix}resource_type, {value})")
    return clauses


def sort_values(rel: Relationship) -> tuple[str, str, str, str, str, str]:
    s = rel.subject
    return (rel.resource.type, rel.resource.id, rel.relation, s.type, s.id, s.relation)


def relationship_values(
    rel: Relationship,
) -> tuple[str, str, str, str, str, str, str | None, str | None, datetime | None]:
    """Column values of `rel` in REL_COLUMNS order; the context as canonical JSON text."""
    caveat = rel.caveat
    return (
        *sort_values(rel),
        caveat.name if caveat is not None else None,
        caveat.context.canonical if caveat is not None else None,
        rel.expires_at,
    )


def aware(value: datetime | None) -> datetime | None:
    """A timestamptz column's value as an aware datetime. asyncpg writes the two ends of
    the range (0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z) as -infinity and
    infinity, and reads those back as naive datetimes of the same wall time."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def relationship_from_row(row: asyncpg.Record) -> Relationship:
    caveat: CaveatRef | None = None
    if row["caveat_name"] is not None:
        raw = row["caveat_context"]
        caveat = CaveatRef(row["caveat_name"], FrozenContext(json.loads(raw) if raw else None))
    return Relationship(
        ObjectRef(row["resource_type"], row["resource_id"]),
        row["relation"],
        SubjectRef(row["subject_type"], row["subject_id"], row["subject_relation"]),
        caveat,
        aware(row["expires_at"]),
    )
