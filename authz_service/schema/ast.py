"""The compiled schema: what the parser produces and the engine reads.

Positions (`Span`) and doc comments are carried for error messages and printing but are
excluded from equality, so "print then parse gives the same schema" is plain `==`.

Expression trees use SpiceDB's meaning:

- `RelationRef(name)`: the relation or permission `name` on the same object;
- `Arrow(relation, target, mode)`: for each subject object of `relation`, `target` on it;
  `mode="any"` is `relation->target` / `relation.any(target)`, `mode="all"` is
  `relation.all(target)` (true only if every such subject object has it, and there is one);
- `Union` `+`, `Intersection` `&`, `Exclusion` `base - subtracted`, `Nil` (empty set),
  `SelfRef` (`self`: the resource itself as a subject, needs `use self`).

Extensions beyond SpiceDB (documented in docs/schema.md):

- `inherit <relation>` inside a definition: role bindings on the objects that
  `<relation>` points to also apply to this object (the resource hierarchy);
- `nondelegable permission x = ...`: `x` is never granted under impersonation;
- `role name { type.permission, ... }`: a built-in role usable by every tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AllowedSubject",
    "Arrow",
    "CaveatDef",
    "Definition",
    "Exclusion",
    "Expr",
    "Intersection",
    "Nil",
    "Permission",
    "Relation",
    "RelationRef",
    "RoleDef",
    "Schema",
    "SelfRef",
    "Span",
    "Union",
]


@dataclass(frozen=True, slots=True)
class Span:
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


NO_SPAN = Span()


@dataclass(frozen=True, slots=True)
class Nil:
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class SelfRef:
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class RelationRef:
    name: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Arrow:
    relation: str
    target: str
    mode: Literal["any", "all"] = "any"
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Union:
    children: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Intersection:
    children: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Exclusion:
    base: Expr
    subtracted: Expr
    span: Span = field(default=NO_SPAN, compare=False)


Expr = Nil | SelfRef | RelationRef | Arrow | Union | Intersection | Exclusion


@dataclass(frozen=True, slots=True)
class AllowedSubject:
    """One alternative in `relation r: user | user:* | group#member with c and expiration`."""

    type: str
    relation: str = ""  # "" = the object itself
    wildcard: bool = False
    caveat: str | None = None
    expiration: bool = False
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def shape(self) -> SubjectShape:
        """What a relationship's subject must match to be admitted, its expiration aside:
        (type, relation, wildcard, caveat). A wildcard admits no subject relation."""
        return (self.type, "" if self.wildcard else self.relation, self.wildcard, self.caveat)


# (subject type, subject relation, wildcard, caveat name)
SubjectShape = tuple[str, str, bool, str | None]


@dataclass(frozen=True, slots=True)
class Relation:
    name: str
    allowed: tuple[AllowedSubject, ...]
    doc: str = field(default="", compare=False)
    span: Span = field(default=NO_SPAN, compare=False)
    # The shapes of `allowed`, as a set: evaluation asks it of every relationship it reads,
    # and one lookup costs a tenth of comparing the alternatives one by one.
    admits: frozenset[SubjectShape] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "admits", frozenset(a.shape for a in self.allowed))


@dataclass(frozen=True, slots=True)
class Permission:
    name: str
    expr: Expr
    delegable: bool = True
    doc: str = field(default="", compare=False)
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True, slots=True)
class Definition:
    name: str
    relations: tuple[Relation, ...] = ()
    permissions: tuple[Permission, ...] = ()
    inherits: tuple[str, ...] = ()  # relation names along which role bindings flow down
    doc: str = field(default="", compare=False)
    span: Span = field(default=NO_SPAN, compare=False)
    inherit_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)

    def relation(self, name: str) -> Relation | None:
        return next((r for r in self.relations if r.name == name), None)

    def permission(self, name: str) -> Permission | None:
        return next((p for p in self.permissions if p.name == name), None)

    def has(self, name: str) -> bool:
        return self.relation(name) is not None or self.permission(name) is not None


@dataclass(frozen=True, slots=True)
class CaveatDef:
    name: str
    parameters: tuple[tuple[str, str], ...]  # (name, type text as written, canonicalised)
    expression: str
    doc: str = field(default="", compare=False)
    span: Span = field(default=NO_SPAN, compare=False)
    parameter_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RoleDef:
    name: str
    permissions: tuple[tuple[str, str], ...]  # (definition, permission)
    doc: str = field(default="", compare=False)
    span: Span = field(default=NO_SPAN, compare=False)
    item_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Schema:
    """A whole schema, in source order. Lookups go through the index built by the compiler."""

    definitions: tuple[Definition, ...] = ()
    caveats: tuple[CaveatDef, ...] = ()
    roles: tuple[RoleDef, ...] = ()
    uses: frozenset[str] = frozenset()  # "expiration", "self"

    def definition(self, name: str) -> Definition | None:
        return next((d for d in self.definitions if d.name == name), None)

    def caveat(self, name: str) -> CaveatDef | None:
        return next((c for c in self.caveats if c.name == name), None)
