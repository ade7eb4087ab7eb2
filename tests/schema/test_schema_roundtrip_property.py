"""Property: printing any schema AST and parsing it back gives an equal AST."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from authz_service.schema import parse_schema, print_schema
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
    RoleDef,
    Schema,
    SelfRef,
    Union,
)

KEYWORDS = {"nil", "self", "expiration"}
names = st.builds(
    "{}{}{}".format,
    st.sampled_from("abnsxz"),
    st.text("aeil_09", min_size=1, max_size=5),
    st.sampled_from("flr07"),
).filter(lambda n: n not in KEYWORDS)
type_names = st.lists(names, min_size=1, max_size=3).map("/".join)
docs = st.sampled_from(["", "a doc", "two\nlines", "with */ inside", "\nblank first"])

leaves: st.SearchStrategy[Expr] = st.one_of(
    st.builds(Nil),
    st.builds(SelfRef),
    st.builds(RelationRef, names),
    st.builds(Arrow, names, names, st.sampled_from(["any", "all"])),
)


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    many = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(
        st.builds(Union, many),
        st.builds(Intersection, many),
        st.builds(Exclusion, children, children),
    )


exprs = st.recursive(leaves, _extend, max_leaves=8)

subjects = st.builds(
    AllowedSubject,
    type_names,
    st.one_of(st.just(""), names),
    st.booleans(),
    st.one_of(st.none(), type_names),
    st.booleans(),
).map(lambda s: s if not (s.wildcard and s.relation) else AllowedSubject(s.type, wildcard=True))

definitions = st.builds(
    Definition,
    type_names,
    st.lists(
        st.builds(Relation, names, st.lists(subjects, min_size=1, max_size=3).map(tuple), docs),
        max_size=3,
    ).map(tuple),
    st.lists(st.builds(Permission, names, exprs, st.booleans(), docs), max_size=3).map(tuple),
    st.lists(names, max_size=2).map(tuple),
    docs,
)
cel = st.sampled_from(
    [
        "true",
        "a == 1",
        "a > 1 &&\n  b < 2",
        "x == '}' || y == \"{\"",
        "{'k': 1}.k == 1",
        "'''\n}'''",
    ]
)
caveat_types = st.sampled_from(["int", "list<string>", "map<list<int>>", "timestamp"])
caveats = st.builds(
    CaveatDef,
    type_names,
    st.lists(st.tuples(names, caveat_types), max_size=3).map(tuple),
    cel,
    docs,
)
roles = st.builds(
    RoleDef, names, st.lists(st.tuples(type_names, names), max_size=3).map(tuple), docs
)
schemas = st.builds(
    Schema,
    st.lists(definitions, max_size=3).map(tuple),
    st.lists(caveats, max_size=2).map(tuple),
    st.lists(roles, max_size=2).map(tuple),
    st.frozensets(st.sampled_from(["expiration", "self"])),
)


@settings(max_examples=300, deadline=None)
@given(schemas)
def test_print_then_parse_is_identity(schema: Schema) -> None:
    printed = print_schema(schema)
    parsed = parse_schema(printed)
    assert parsed == schema
    assert print_schema(parsed) == printed
