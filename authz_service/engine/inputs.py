"""Request validation against the schema: unknown names are the caller's mistake."""

from __future__ import annotations

from collections.abc import Sequence

from authz_service.errors import InvalidArgument, echo
from authz_service.model import WILDCARD, ObjectRef, Relationship, SubjectRef
from authz_service.schema.ast import Definition
from authz_service.schema.compiled import CompiledSchema
from authz_service.schema.relationships import check_relationship

__all__ = [
    "require_contextual",
    "require_definition",
    "require_member",
    "require_permission",
    "require_subject",
]


def require_definition(schema: CompiledSchema, type_name: str, field: str) -> Definition:
    definition = schema.definitions.get(type_name)
    if definition is None:
        raise InvalidArgument(
            f"unknown definition `{echo(type_name)}`", field=field, value=type_name
        )
    return definition


def require_member(schema: CompiledSchema, type_name: str, name: str, field: str) -> None:
    """`name` must be a relation or a permission of `type_name` (both can be checked)."""
    if schema.member(type_name, name) is None:
        raise InvalidArgument(
            f"`{echo(type_name)}` has no permission or relation `{echo(name)}`",
            field=field,
            value=name,
        )


def require_permission(schema: CompiledSchema, resource: ObjectRef, permission: str) -> None:
    require_definition(schema, resource.type, "resource")
    require_member(schema, resource.type, permission, "permission")


def require_subject(schema: CompiledSchema, subject: SubjectRef, field: str = "subject") -> None:
    require_definition(schema, subject.type, field)
    if subject.id == WILDCARD:
        raise InvalidArgument(
            f"cannot decide for the wildcard subject `{echo(subject)}`",
            field=field,
            value=str(subject),
        )
    if subject.relation:
        require_member(schema, subject.type, subject.relation, field)


def require_contextual(schema: CompiledSchema, contextual: Sequence[Relationship]) -> None:
    """Request-only relationships, in the order of the request's `contextual_relationships`
    (Check, CheckBulk, ListPermissions and Explain all call it that)."""
    for index, rel in enumerate(contextual):
        check_relationship(schema, rel, field=f"contextual_relationships[{index}]")
