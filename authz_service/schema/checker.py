"""Type checking of a parsed `Schema`: every problem, with its position.

The checker collects all problems instead of stopping at the first, so the compiler can
report the one earliest in the source whatever order the checks run in. Caveat parameter
types and CEL expressions are checked by `authz_service.caveats`; the compiled caveats are
kept so the compiler does not compile them twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TypeVar

from authz_service.caveats import (
    CompiledCaveat,
    canonical_caveat_type_text,
    compile_caveat,
    parse_caveat_type,
)
from authz_service.errors import CaveatError
from authz_service.schema.ast import (
    AllowedSubject,
    Arrow,
    CaveatDef,
    Definition,
    Exclusion,
    Expr,
    Intersection,
    Permission,
    Relation,
    RelationRef,
    RoleDef,
    Schema,
    SelfRef,
    Span,
    Union,
)
from authz_service.schema.cycles import self_references
from authz_service.schema.printer import describe_subject, print_expr

__all__ = [
    "DEFAULT_MAX_CAVEAT_BYTES",
    "DEFAULT_MAX_CAVEAT_COST",
    "MAX_EXPRESSION_DEPTH",
    "Problem",
    "check_schema",
    "expression_depth",
]

DEFAULT_MAX_CAVEAT_BYTES = 4_096
DEFAULT_MAX_CAVEAT_COST = 1_000_000
# Operators nested in one permission. Every pass over an expression (evaluation,
# explanation, printing, equality) recurses once or twice per level, so this keeps one
# level of evaluation far below Python's 1,000 frames; an explanation written for it stays
# below protobuf's 100 nested messages.
MAX_EXPRESSION_DEPTH = 64
_CHAIN_SHOWN = 10  # steps of a cycle named in its error

Problem = tuple[Span, str]
_Named = TypeVar("_Named", Definition, CaveatDef, RoleDef)


def check_schema(
    schema: Schema,
    *,
    max_caveat_bytes: int | None = None,
    max_caveat_cost: int | None = None,
    max_expression_depth: int | None = None,
    allow_undefined_functions: bool = False,
) -> tuple[list[Problem], dict[str, CompiledCaveat], Schema]:
    """Problems found (unsorted), the compiled caveats, and the schema with canonical
    caveat parameter types. A caveat expression over `max_caveat_bytes` is a problem
    (compiling CEL takes time and memory in proportion to it, holding the interpreter),
    and so is one over `max_caveat_cost` on any input (see `caveats.cost`), a permission
    whose operators nest deeper than `max_expression_depth`, and a caveat calling a
    function CEL does not define unless `allow_undefined_functions`."""
    checker = _Checker(
        schema,
        max_caveat_bytes,
        max_caveat_cost,
        max_expression_depth,
        allow_undefined_functions,
    )
    checker.run()
    return checker.problems, checker.compiled, checker.canonical()


class _Checker:
    def __init__(
        self,
        schema: Schema,
        max_caveat_bytes: int | None,
        max_caveat_cost: int | None,
        max_expression_depth: int | None,
        allow_undefined_functions: bool,
    ) -> None:
        self.schema = schema
        self.max_caveat_bytes = max_caveat_bytes
        self.max_caveat_cost = max_caveat_cost
        self.max_expression_depth = max_expression_depth
        self.allow_undefined_functions = allow_undefined_functions
        self.problems: list[Problem] = []
        self.compiled: dict[str, CompiledCaveat] = {}
        self.param_types: dict[str, tuple[tuple[str, str], ...]] = {}
        self.definitions: dict[str, Definition] = {}
        self.caveats: dict[str, CaveatDef] = {}

    def error(self, span: Span, message: str) -> None:
        self.problems.append((span, message))

    def run(self) -> None:
        self.definitions = self.unique("definition", self.schema.definitions)
        self.caveats = self.unique("caveat", self.schema.caveats)
        self.unique("role", self.schema.roles)
        for caveat in self.schema.caveats:
            self.caveat(caveat)
        for definition in self.schema.definitions:
            self.definition(definition)
        for role in self.schema.roles:
            self.role(role)

    def unique(self, kind: str, items: Sequence[_Named]) -> dict[str, _Named]:
        """The first item of each name; later ones are duplicates."""
        first: dict[str, _Named] = {}
        for item in items:
            if item.name in first:
                self.error(item.span, f"duplicate {kind} `{item.name}`")
            else:
                first[item.name] = item
        return first

    def canonical(self) -> Schema:
        caveats = tuple(
            replace(c, parameters=self.param_types.get(c.name, c.parameters))
            for c in self.schema.caveats
        )
        return replace(self.schema, caveats=caveats)

    # -- caveats ------------------------------------------------------------------------

    def caveat(self, caveat: CaveatDef) -> None:
        names: set[str] = set()
        params: list[tuple[str, str]] = []
        spans = caveat.parameter_spans or (caveat.span,) * len(caveat.parameters)
        for (name, type_text), span in zip(caveat.parameters, spans, strict=True):
            where = f"parameter `{name}` of caveat `{caveat.name}`"
            if name in names:
                self.error(span, f"duplicate {where}")
            names.add(name)
            try:
                params.append((name, canonical_caveat_type_text(parse_caveat_type(type_text))))
            except CaveatError as exc:
                self.error(span, f"{exc.message}, for {where}")
        if len(params) != len(caveat.parameters) or len(names) != len(params):
            return
        self.param_types[caveat.name] = tuple(params)
        size = len(caveat.expression.encode())
        if self.max_caveat_bytes is not None and size > self.max_caveat_bytes:
            self.error(
                caveat.span,
                f"caveat `{caveat.name}` is {size} bytes, over the limit "
                f"AUTHZ_MAX_CAVEAT_BYTES = {self.max_caveat_bytes}",
            )
            return
        try:
            compiled = compile_caveat(
                caveat.name,
                params,
                caveat.expression,
                max_cost=self.max_caveat_cost,
                allow_undefined_functions=self.allow_undefined_functions,
            )
        except CaveatError as exc:
            self.error(caveat.span, exc.message)  # names the caveat already
            return
        self.compiled.setdefault(caveat.name, compiled)

    # -- definitions --------------------------------------------------------------------

    def definition(self, definition: Definition) -> None:
        members: dict[str, Relation | Permission] = {}
        in_order: list[Relation | Permission] = sorted(
            [*definition.relations, *definition.permissions],
            key=lambda m: (m.span.line, m.span.column),
        )
        for member in in_order:
            if member.name in members:
                kind = "relation" if isinstance(member, Relation) else "permission"
                self.error(member.span, f"duplicate {kind} `{member.name}` in `{definition.name}`")
            else:
                members[member.name] = member
        for relation in definition.relations:
            self.relation(definition, relation)
        self.inherits(definition, members)
        for permission in definition.permissions:
            self.nesting(definition, permission)
            for node in _walk(permission.expr):
                self.expr_node(definition, permission, node, members)
        self.cycles(definition, members)

    def nesting(self, definition: Definition, permission: Permission) -> None:
        limit = self.max_expression_depth
        depth = expression_depth(permission.expr)
        if limit is not None and depth > limit:
            self.error(
                permission.span,
                f"permission `{permission.name}` of `{definition.name}` nests operators "
                f"{depth} deep, over the limit of {limit} (each `-` of a chain adds one: write "
                "`a - (b + c + d)` for `a - b - c - d`)",
            )

    def relation(self, definition: Definition, relation: Relation) -> None:
        where = f"in relation `{relation.name}` of `{definition.name}`"
        seen: set[AllowedSubject] = set()
        for subject in relation.allowed:
            target = self.definitions.get(subject.type)
            if subject in seen:
                self.error(
                    subject.span, f"duplicate subject type `{describe_subject(subject)}` {where}"
                )
            seen.add(subject)
            if target is None:
                self.error(subject.span, f"unknown definition `{subject.type}` {where}")
            elif subject.relation and not target.has(subject.relation):
                self.error(
                    subject.span,
                    f"unknown relation `{subject.relation}` on `{subject.type}` {where}",
                )
            elif subject.relation:
                self.transitive_wildcard(target, subject, where)
            if subject.caveat is not None and subject.caveat not in self.caveats:
                self.error(subject.span, f"unknown caveat `{subject.caveat}` {where}")
            if subject.expiration and "expiration" not in self.schema.uses:
                self.error(subject.span, f"`with expiration` needs `use expiration`, {where}")

    def transitive_wildcard(self, target: Definition, subject: AllowedSubject, where: str) -> None:
        """SpiceDB refuses a subject set whose relation itself allows a wildcard
        (`viewer: group#member` with `member: user:*`), however the relation is used. A
        subject set naming a permission is fine, as in SpiceDB."""
        relation = target.relation(subject.relation)
        wildcard = next((s for s in relation.allowed if s.wildcard), None) if relation else None
        if wildcard is not None:
            self.error(
                subject.span,
                f"relation `{subject.type}#{subject.relation}` allows wildcard "
                f"`{describe_subject(wildcard)}`; wildcard relations cannot be transitively "
                f"included, {where}",
            )

    def inherits(self, definition: Definition, members: dict[str, Relation | Permission]) -> None:
        spans = definition.inherit_spans or (definition.span,) * len(definition.inherits)
        seen: set[str] = set()
        for name, span in zip(definition.inherits, spans, strict=True):
            where = f"`inherit {name}` in `{definition.name}`"
            member = members.get(name)
            if name in seen:
                self.error(span, f"duplicate {where}")
            elif member is None:
                self.error(span, f"unknown relation `{name}` in {where}")
            elif isinstance(member, Permission):
                self.error(span, f"{where}: `{name}` is a permission; `inherit` needs a relation")
            else:
                for subject in member.allowed:
                    if subject.wildcard or subject.relation:
                        self.error(
                            span,
                            f"{where}: relation `{name}` allows `{describe_subject(subject)}`; "
                            "`inherit` needs a relation of plain objects",
                        )
                        break
            seen.add(name)

    def expr_node(
        self,
        definition: Definition,
        permission: Permission,
        node: Expr,
        members: dict[str, Relation | Permission],
    ) -> None:
        where = f"in permission `{permission.name}` of `{definition.name}`"
        if isinstance(node, SelfRef) and "self" not in self.schema.uses:
            self.error(node.span, f"`self` needs `use self`, {where}")
        elif isinstance(node, RelationRef) and node.name not in members:
            self.error(node.span, f"unknown relation or permission `{node.name}` {where}")
        elif isinstance(node, Arrow):
            self.arrow(node, members.get(node.relation), f"arrow `{print_expr(node)}` {where}")

    def arrow(self, arrow: Arrow, left: Relation | Permission | None, where: str) -> None:
        if left is None:
            self.error(arrow.span, f"unknown relation `{arrow.relation}` in {where}")
            return
        if isinstance(left, Permission):
            self.error(
                arrow.span,
                f"`{arrow.relation}` is a permission; arrows need a relation, in {where}",
            )
            return
        wildcard = next((s for s in left.allowed if s.wildcard), None)
        if wildcard is not None:
            self.error(
                arrow.span,
                f"relation `{left.name}` allows wildcard `{describe_subject(wildcard)}`; "
                f"arrows cannot walk wildcards, in {where}",
            )
            return
        known = [self.definitions[s.type] for s in left.allowed if s.type in self.definitions]
        if known and not any(d.has(arrow.target) for d in known):
            types = ", ".join(f"`{d.name}`" for d in dict.fromkeys(known))
            self.error(
                arrow.span,
                f"`{arrow.target}` is not a relation or permission of {types}, in {where}",
            )

    def cycles(self, definition: Definition, members: dict[str, Relation | Permission]) -> None:
        edges: dict[str, list[str]] = {}
        for permission in definition.permissions:
            refs = (n.name for n in _walk(permission.expr) if isinstance(n, RelationRef))
            edges.setdefault(
                permission.name,
                list(dict.fromkeys(r for r in refs if isinstance(members.get(r), Permission))),
            )
        spans = {permission.name: permission.span for permission in definition.permissions}
        for name, path in self_references(list(edges), edges):
            shown = [f"`{step}`" for step in path]
            if len(shown) > _CHAIN_SHOWN:  # an error message must fit in a gRPC trailer
                left = len(shown) - _CHAIN_SHOWN
                shown = [*shown[: _CHAIN_SHOWN - 2], f"({left} more)", *shown[-2:]]
            chain = " -> ".join(shown)
            self.error(
                spans[name],
                f"permission `{name}` of `{definition.name}` refers to itself: {chain}",
            )

    # -- roles --------------------------------------------------------------------------

    def role(self, role: RoleDef) -> None:
        spans = role.item_spans or (role.span,) * len(role.permissions)
        seen: set[tuple[str, str]] = set()
        for item, span in zip(role.permissions, spans, strict=True):
            type_name, member = item
            definition = self.definitions.get(type_name)
            if item in seen:
                self.error(span, f"duplicate item `{type_name}.{member}` in role `{role.name}`")
            elif definition is None:
                self.error(span, f"unknown definition `{type_name}` in role `{role.name}`")
            elif not definition.has(member):
                self.error(
                    span, f"unknown permission `{member}` on `{type_name}` in role `{role.name}`"
                )
            seen.add(item)


def expression_depth(expr: Expr) -> int:
    """How deeply operators nest in `expr`: 0 for a leaf, 2 for `a - b - c` (left-deep,
    `(a - b) - c`) and for `a + (b & c)`."""
    return max(depth for _, depth in _walk_depths(expr))


def _walk(expr: Expr) -> Iterator[Expr]:
    """Every node of `expr`, parents first, in source order."""
    for node, _ in _walk_depths(expr):
        yield node


def _walk_depths(expr: Expr) -> Iterator[tuple[Expr, int]]:
    # Without recursion: the schema may nest too deeply for it, which is then reported.
    stack: list[tuple[Expr, int]] = [(expr, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        if isinstance(node, Union | Intersection):
            stack.extend((child, depth + 1) for child in reversed(node.children))
        elif isinstance(node, Exclusion):
            stack.extend(((node.subtracted, depth + 1), (node.base, depth + 1)))
