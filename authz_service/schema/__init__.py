"""The schema language: lexer -> parser -> AST -> checker/compiler -> printer.

    parse_schema(text) -> Schema              syntax only
    compile_schema(text) -> CompiledSchema    parse + type check + indexes + version digest
    print_schema(schema) -> str               canonical text; parse(print(s)) == s
    orphaned_relationships(new, kinds)        what a schema change would orphan, and why
    orphaned_kinds(new, kinds)                the same, as `type#relation@subject`

Every problem is a `SchemaError` carrying line:column. The language is described in
docs/schema.md.
"""

from __future__ import annotations

from authz_service.schema.ast import Schema
from authz_service.schema.compiled import CompiledSchema
from authz_service.schema.compiler import compile_ast, compile_schema
from authz_service.schema.diff import orphaned_kinds, orphaned_relationships
from authz_service.schema.parser import parse_schema
from authz_service.schema.printer import print_expr, print_schema

__all__ = [
    "CompiledSchema",
    "Schema",
    "compile_ast",
    "compile_schema",
    "orphaned_kinds",
    "orphaned_relationships",
    "parse_schema",
    "print_expr",
    "print_schema",
]
