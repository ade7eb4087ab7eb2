"""Hypothesis strategies for small authorization worlds.

A world: `user` plus one or two other definitions (`group`, `doc`), each with relations
allowing `user`, `user:*`, caveated users, subject sets (`group#member`-like, any member
of any definition, so data can be recursive) and plain objects (for arrows); permissions
built from `+ & -`, arrows (`->`, `.all`), `nil` and `self`; random relationships
including caveated, expired and cyclic ones; random request contexts, often missing
parameters.

Exclusion inside a schema cycle is repaired away (replaced by its base): with negation on
a cycle the least fixpoint need not exist, SpiceDB gives no meaning to it, and the
engine's depth-first evaluation would answer according to where the cycle was entered.
Cycles through unions, intersections and arrows stay, and are common here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from authz_service.caveats import compile_caveat
from authz_service.model import CaveatRef, FrozenContext, ObjectRef, Relationship, SubjectRef
from authz_service.schema.ast import (
    AllowedSubject,
    Arrow,
    CaveatDef,
    Definition,
    Exclusion,
    Expr,
    Intersection,
    Nil,
    Permission,
    Relation,
    RelationRef,
    Schema,
    SelfRef,
    Union,
)
from authz_service.schema.compiled import CompiledSchema
from tests.reference.evaluator import F, T, Value, World

NOW = datetime(2030, 1, 1, tzinfo=UTC)
USERS = ["u1", "u2"]
FRESH_USER = "u9"  # named by no relationship
OBJECT_IDS = ["a", "b", "c"]

CAVEAT_DEFS = (
    CaveatDef("over", (("x", "int"),), "x > 5"),
    CaveatDef("below", (("y", "int"), ("z", "int")), "y < z"),
)
CAVEATS = {c.name: compile_caveat(c.name, c.parameters, c.expression) for c in CAVEAT_DEFS}


def _param(ctx: Mapping[str, Any], name: str) -> int | None:
    value = ctx.get(name)
    return value if isinstance(value, int) else None


def _over(ctx: Mapping[str, Any]) -> Value:
    x = _param(ctx, "x")
    if x is None:
        return (1, frozenset({"x"}))
    return T if x > 5 else F


def _below(ctx: Mapping[str, Any]) -> Value:
    y, z = _param(ctx, "y"), _param(ctx, "z")
    missing = frozenset(n for n, v in (("y", y), ("z", z)) if v is None)
    if missing:
        return (1, missing)
    assert y is not None
    assert z is not None
    return T if y < z else F


REFERENCE_CAVEATS = {"over": _over, "below": _below}


@dataclass
class GeneratedWorld:
    schema: Schema
    compiled: CompiledSchema
    relationships: list[Relationship]
    objects: dict[str, list[str]]
    contexts: list[FrozenContext]
    extra_subjects: list[SubjectRef]  # subject sets and plain non-user objects

    def reference(self) -> World:
        return World(self.schema, self.relationships, NOW, REFERENCE_CAVEATS, self.objects)


def compiled_from_ast(schema: Schema) -> CompiledSchema:
    """A CompiledSchema built straight from an AST (no type checker: generated schemas
    may be unusual, e.g. arrows to members only some subject types have)."""
    relations = {(d.name, r.name): r for d in schema.definitions for r in d.relations}
    permissions = {(d.name, p.name): p for d in schema.definitions for p in d.permissions}
    return CompiledSchema(
        ast=schema,
        text=repr(schema),
        version=f"generated-{hash(schema) & 0xFFFFFFFF:08x}",
        definitions=MappingProxyType({d.name: d for d in schema.definitions}),
        relations=MappingProxyType(relations),
        permissions=MappingProxyType(permissions),
        caveats=MappingProxyType(CAVEATS),
        roles=MappingProxyType({}),
    )


# -- schema -------------------------------------------------------------------------------


@st.composite
def _allowed(draw: st.DrawFn, others: list[tuple[str, list[str]]]) -> tuple[AllowedSubject, ...]:
    users = [
        AllowedSubject("user"),
        AllowedSubject("user", wildcard=True),
        AllowedSubject("user", caveat="over"),
        AllowedSubject("user", caveat="below"),
        AllowedSubject("user", wildcard=True, caveat="over"),
    ]
    objects: list[AllowedSubject] = []
    for name, members in others:
        objects.append(AllowedSubject(name))
        objects.extend(AllowedSubject(name, m) for m in members)
    chosen = draw(st.lists(st.sampled_from(users), max_size=2, unique=True))
    chosen += draw(st.lists(st.sampled_from(objects), min_size=0 if chosen else 1, max_size=2))
    return tuple(dict.fromkeys(chosen))


def _expr_strategy(leaves: list[Expr]) -> st.SearchStrategy[Expr]:
    leaf = st.sampled_from(leaves)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda c: Union(tuple(c))),
            st.lists(inner, min_size=2, max_size=3).map(lambda c: Intersection(tuple(c))),
            st.tuples(inner, inner).map(lambda p: Exclusion(p[0], p[1])),
        ),
        max_leaves=4,
    )


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    names = draw(st.sampled_from([["group"], ["group", "doc"]]))
    # Members are fixed up front so relations may point at any member of any definition.
    relation_names = {n: [f"r{i}" for i in range(draw(st.integers(1, 3)))] for n in names}
    permission_names = {n: [f"p{i}" for i in range(draw(st.integers(1, 3)))] for n in names}
    members = {n: relation_names[n] + permission_names[n] for n in names}
    others = [(n, members[n]) for n in names]
    definitions = [Definition("user")]
    for name in names:
        relations = tuple(Relation(r, draw(_allowed(others))) for r in relation_names[name])
        if draw(st.booleans()):  # nested groups: `r0: ... | <self type>#r0`
            first = relations[0]
            nested = AllowedSubject(name, first.name)
            allowed = tuple(dict.fromkeys((*first.allowed, nested)))
            relations = (Relation(first.name, allowed), *relations[1:])
        permissions: list[Permission] = []
        for p in permission_names[name]:
            leaves: list[Expr] = [RelationRef(r) for r in relation_names[name]]
            leaves += [RelationRef(q.name) for q in permissions]
            leaves += [Nil(), SelfRef()]
            for rel in relations:
                for target_type in {a.type for a in rel.allowed if a.type != "user"}:
                    for target in members[target_type]:
                        leaves.append(Arrow(rel.name, target, "any"))
                        leaves.append(Arrow(rel.name, target, "all"))
            permissions.append(Permission(p, draw(_expr_strategy(leaves))))
        definitions.append(Definition(name, relations, tuple(permissions)))
    schema = Schema(tuple(definitions), CAVEAT_DEFS)
    return _repair(schema)


def _repair(schema: Schema) -> Schema:
    """Replace exclusions that sit on a schema cycle by their base, until none is left."""
    while _cycle_exclusions(schema):
        schema = _drop_one_exclusion(schema)
    return schema


def _drop_one_exclusion(schema: Schema) -> Schema:
    definitions = list(schema.definitions)
    for i, d in enumerate(definitions):
        for j, p in enumerate(d.permissions):
            for candidate in _without_each_exclusion(p.expr):
                trial_perms = list(d.permissions)
                trial_perms[j] = Permission(p.name, candidate)
                trial_defs = list(definitions)
                trial_defs[i] = Definition(d.name, d.relations, tuple(trial_perms))
                trial = Schema(tuple(trial_defs), schema.caveats)
                if _cycle_exclusions(trial) < _cycle_exclusions(schema):
                    return trial
    raise AssertionError("no exclusion to drop")  # pragma: no cover


def _cycle_exclusions(schema: Schema) -> int:
    world = World(schema, [], NOW, REFERENCE_CAVEATS, {})
    edges = world._edges()
    pairs = {e[0] for e in edges} | {e[1] for e in edges}
    reach = {p: {p} for p in pairs}
    changed = True
    while changed:
        changed = False
        for src, dst, _ in edges:
            if not reach[dst] <= reach[src]:
                reach[src] |= reach[dst]
                changed = True
    return sum(1 for src, dst, neg in edges if neg and src in reach[dst])


def _without_each_exclusion(e: Expr) -> list[Expr]:
    """Every expression obtained by replacing one exclusion in `e` with its base."""
    out: list[Expr] = []
    if isinstance(e, Exclusion):
        out.append(e.base)
        out += [Exclusion(b, e.subtracted) for b in _without_each_exclusion(e.base)]
        out += [Exclusion(e.base, s) for s in _without_each_exclusion(e.subtracted)]
    elif isinstance(e, Union | Intersection):
        for k, child in enumerate(e.children):
            for replaced in _without_each_exclusion(child):
                children = list(e.children)
                children[k] = replaced
                out.append(type(e)(tuple(children)))
    return out


# -- data ---------------------------------------------------------------------------------

_CONTEXT_VALUES = st.dictionaries(
    st.sampled_from(["x", "y", "z"]), st.integers(min_value=0, max_value=10), max_size=2
)


@st.composite
def _relationship(draw: st.DrawFn, schema: Schema, objects: dict[str, list[str]]) -> Relationship:
    d = draw(st.sampled_from([d for d in schema.definitions if d.relations]))
    rel = draw(st.sampled_from(d.relations))
    allowed = draw(st.sampled_from(rel.allowed))
    if allowed.wildcard:
        subject = SubjectRef(allowed.type, "*")
    else:
        subject = SubjectRef(
            allowed.type, draw(st.sampled_from(objects[allowed.type])), allowed.relation
        )
    caveat = None
    if allowed.caveat:
        caveat = CaveatRef(allowed.caveat, FrozenContext(draw(_CONTEXT_VALUES)))
    expires = draw(
        st.sampled_from([None, None, None, NOW - timedelta(days=1), NOW + timedelta(days=1)])
    )
    resource = ObjectRef(d.name, draw(st.sampled_from(objects[d.name])))
    return Relationship(resource, rel.name, subject, caveat, expires)


@st.composite
def worlds(draw: st.DrawFn) -> GeneratedWorld:
    schema = draw(schemas())
    objects = {"user": [*USERS, FRESH_USER]}
    for d in schema.definitions[1:]:
        objects[d.name] = OBJECT_IDS[: draw(st.integers(2, 3))]
    count = draw(st.integers(min_value=4, max_value=24))
    rels = [draw(_relationship(schema, objects)) for _ in range(count)]
    unique = list({r.key: r for r in rels}.values())
    contexts = [FrozenContext(), FrozenContext(draw(_CONTEXT_VALUES))]
    extra = {r.subject for r in unique if r.subject.relation}
    for d in schema.definitions[1:]:
        members = [m.name for m in d.relations] + [m.name for m in d.permissions]
        some_id = draw(st.sampled_from(objects[d.name]))
        extra.add(SubjectRef(d.name, some_id, draw(st.sampled_from(members))))
        extra.add(SubjectRef(d.name, draw(st.sampled_from(objects[d.name]))))
    return GeneratedWorld(
        schema,
        compiled_from_ast(schema),
        unique,
        objects,
        contexts,
        sorted(extra, key=str),
    )
