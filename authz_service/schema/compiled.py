"""A type-checked schema with the indexes the engine needs on every request.

Built once per schema version by `authz_service.schema.compile_schema`, never per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from authz_service.schema.ast import Definition, Permission, Relation, RoleDef, Schema

if TYPE_CHECKING:
    from authz_service.caveats import CompiledCaveat

__all__ = ["CompiledSchema"]


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """`version` is a digest of `text` (the canonical printed form): equal schemas, equal
    versions, whatever whitespace or comments the author used."""

    ast: Schema
    text: str
    version: str
    definitions: Mapping[str, Definition] = field(compare=False)
    relations: Mapping[tuple[str, str], Relation] = field(compare=False)
    permissions: Mapping[tuple[str, str], Permission] = field(compare=False)
    caveats: Mapping[str, CompiledCaveat] = field(compare=False)
    roles: Mapping[str, RoleDef] = field(compare=False)
    # How deeply operators nest in its deepest permission (`checker.expression_depth`):
    # the engine sizes its stack by it.
    nesting: int = field(default=0, compare=False)

    def member(self, type_name: str, name: str) -> Relation | Permission | None:
        """The relation or permission `name` on `type_name`, or None."""
        return self.relations.get((type_name, name)) or self.permissions.get((type_name, name))
