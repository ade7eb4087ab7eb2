"""Is a relationship allowed by the schema? Checked on every write, never on reads.

A relationship `res#rel@subj` is allowed when `res`'s definition has a relation (not a
permission) `rel` whose allowed subject types include one that matches the subject
exactly: same type, same subject relation, wildcard only if `type:*` is listed, the same
caveat (or none), and an expiration only where `with expiration` is listed; the context
stored with a caveat may name only its parameters, each with a value of its type. An
expiration in the past is accepted: such a relationship simply does not exist for any check.
"""

from __future__ import annotations

from authz_service.errors import InvalidArgument, echo
from authz_service.model import Relationship, RelationshipKind
from authz_service.schema.ast import AllowedSubject
from authz_service.schema.compiled import CompiledSchema

__all__ = ["allows", "check_relationship"]


def _describe(allowed: AllowedSubject) -> str:
    text = allowed.type
    if allowed.wildcard:
        text += ":*"
    elif allowed.relation:
        text += f"#{allowed.relation}"
    extras = [c for c in (allowed.caveat, "expiration" if allowed.expiration else None) if c]
    return f"{text} with {' and '.join(extras)}" if extras else text


def allows(allowed: AllowedSubject, kind: RelationshipKind) -> bool:
    """Does this allowed subject type admit relationships of `kind`? (Writes and the
    orphan check of schema changes share this rule.)"""
    if allowed.type != kind.subject_type or allowed.wildcard != kind.wildcard:
        return False
    if not allowed.wildcard and allowed.relation != kind.subject_relation:
        return False
    return allowed.caveat == kind.caveat and (allowed.expiration or not kind.expiring)


def check_relationship(
    schema: CompiledSchema,
    rel: Relationship,
    field: str = "relationship",
) -> None:
    """Raise InvalidArgument naming `field` (the request field holding `rel`) and the
    relationship if the schema forbids it; a context value its caveat's parameter does not
    admit is named by its own path, `<field>.caveat.context.<parameter>`."""
    text = str(rel)
    definition = schema.definitions.get(rel.resource.type)
    if definition is None:
        raise InvalidArgument(
            f"unknown definition `{echo(rel.resource.type)}` in `{echo(text)}`",
            field=field,
            value=text,
        )
    if schema.permissions.get((rel.resource.type, rel.relation)) is not None:
        raise InvalidArgument(
            f"`{echo(rel.relation)}` is a permission of `{echo(rel.resource.type)}`, not a relation: "
            f"cannot write `{echo(text)}`",
            field=field,
            value=text,
        )
    relation = schema.relations.get((rel.resource.type, rel.relation))
    if relation is None:
        raise InvalidArgument(
            f"unknown relation `{echo(rel.relation)}` on `{echo(rel.resource.type)}` in `{echo(text)}`",
            field=field,
            value=text,
        )
    if schema.definitions.get(rel.subject.type) is None:
        raise InvalidArgument(
            f"unknown definition `{echo(rel.subject.type)}` in `{echo(text)}`",
            field=field,
            value=text,
        )
    kind = RelationshipKind.of(rel)
    if not any(allows(allowed, kind) for allowed in relation.allowed):
        expected = " | ".join(_describe(a) for a in relation.allowed)
        raise InvalidArgument(
            f"subject `{echo(rel.subject)}` is not allowed on `{rel.resource.type}#{rel.relation}` "
            f"(allowed: {expected}) in `{echo(text)}`",
            field=field,
            value=text,
        )
    if rel.caveat is not None:
        caveat = schema.caveats.get(rel.caveat.name)
        declared = {name for name, _ in caveat.parameters} if caveat is not None else set()
        unknown = sorted(set(rel.caveat.context) - declared)
        if unknown:
            raise InvalidArgument(
                f"caveat `{echo(rel.caveat.name)}` has no parameter `{echo(unknown[0])}` in `{echo(text)}`",
                field=field,
                value=text,
            )
        if caveat is not None:
            # The conversion every check of it makes: a value that fails it fails them all.
            caveat.check_context(rel.caveat.context, f"{field}.caveat.context")
