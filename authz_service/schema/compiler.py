"""Schema text -> `CompiledSchema`: parse, type check, canonicalise, index, digest.

Runs once per schema write, never per request. Of all problems the checker finds, the one
earliest in the source is raised, so the same text always gives the same error.
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType

from authz_service.errors import SchemaError
from authz_service.schema.ast import Permission, Relation, Schema
from authz_service.schema.checker import MAX_EXPRESSION_DEPTH, check_schema, expression_depth
from authz_service.schema.compiled import CompiledSchema
from authz_service.schema.parser import parse_schema
from authz_service.schema.printer import print_schema

__all__ = ["compile_ast", "compile_schema", "schema_version"]


def compile_schema(
    text: str,
    *,
    max_caveat_bytes: int | None = None,
    max_caveat_cost: int | None = None,
    max_expression_depth: int | None = MAX_EXPRESSION_DEPTH,
    allow_undefined_functions: bool = False,
) -> CompiledSchema:
    """Parse and type-check `text`. Raises `SchemaError` for the first problem in the source.
    The limits bound each caveat and each permission's expression (see `check_schema`);
    None means no bound, as for schemas already stored. A stored schema also passes
    `allow_undefined_functions`: it may predate the refusal of caveats that call a
    function CEL does not define."""
    return compile_ast(
        parse_schema(text),
        max_caveat_bytes=max_caveat_bytes,
        max_caveat_cost=max_caveat_cost,
        max_expression_depth=max_expression_depth,
        allow_undefined_functions=allow_undefined_functions,
    )


def compile_ast(
    schema: Schema,
    *,
    max_caveat_bytes: int | None = None,
    max_caveat_cost: int | None = None,
    max_expression_depth: int | None = MAX_EXPRESSION_DEPTH,
    allow_undefined_functions: bool = False,
) -> CompiledSchema:
    """Type-check an already parsed (or built) schema."""
    problems, caveats, canonical = check_schema(
        schema,
        max_caveat_bytes=max_caveat_bytes,
        max_caveat_cost=max_caveat_cost,
        max_expression_depth=max_expression_depth,
        allow_undefined_functions=allow_undefined_functions,
    )
    if problems:
        # `min` keeps the first of equal positions: the checker order breaks ties.
        span, message = min(problems, key=lambda p: (p[0].line, p[0].column))
        raise SchemaError(message, line=span.line, column=span.column)
    text = print_schema(canonical)
    relations: dict[tuple[str, str], Relation] = {}
    permissions: dict[tuple[str, str], Permission] = {}
    for definition in canonical.definitions:
        for relation in definition.relations:
            relations[(definition.name, relation.name)] = relation
        for permission in definition.permissions:
            permissions[(definition.name, permission.name)] = permission
    return CompiledSchema(
        ast=canonical,
        text=text,
        version=schema_version(text),
        definitions=MappingProxyType({d.name: d for d in canonical.definitions}),
        relations=MappingProxyType(relations),
        permissions=MappingProxyType(permissions),
        caveats=MappingProxyType(caveats),
        roles=MappingProxyType({r.name: r for r in canonical.roles}),
        nesting=max((expression_depth(p.expr) for p in permissions.values()), default=0),
    )


def schema_version(canonical_text: str) -> str:
    """First 16 hex digits of the SHA-256 of the canonical printed text."""
    return hashlib.sha256(canonical_text.encode()).hexdigest()[:16]
