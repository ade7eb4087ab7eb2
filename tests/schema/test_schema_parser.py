"""Parser behaviour: precedence, n-ary flattening, arrows, caveat text capture, docs."""

from __future__ import annotations

import pytest

from authz_service.errors import SchemaError
from authz_service.schema import compile_schema, parse_schema, print_expr
from authz_service.schema.ast import (
    AllowedSubject,
    Arrow,
    Exclusion,
    Expr,
    Intersection,
    Nil,
    RelationRef,
    SelfRef,
    Union,
)

a, b, c, d = (RelationRef(n) for n in ("aaa", "bbb", "ccc", "ddd"))


def expr(text: str) -> Expr:
    source = f"definition doc {{ permission ppp = {text} }}"
    return parse_schema(source).definitions[0].permissions[0].expr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aaa - bbb + ccc", Exclusion(a, Union((b, c)))),
        ("aaa + bbb & ccc", Intersection((Union((a, b)), c))),
        ("aaa - bbb - ccc", Exclusion(Exclusion(a, b), c)),
        ("(aaa - bbb) - ccc", Exclusion(Exclusion(a, b), c)),
        ("aaa - (bbb - ccc)", Exclusion(a, Exclusion(b, c))),
        ("aaa + bbb + ccc", Union((a, b, c))),
        ("aaa & bbb & ccc", Intersection((a, b, c))),
        ("aaa + (bbb + ccc)", Union((a, Union((b, c))))),
        ("(aaa + bbb) + ccc", Union((Union((a, b)), c))),
        ("aaa & bbb - ccc & ddd", Exclusion(Intersection((a, b)), Intersection((c, d)))),
        ("aaa - bbb & ccc + ddd", Exclusion(a, Intersection((b, Union((c, d)))))),
        ("((aaa))", a),
        ("nil", Nil()),
        ("aaa->bbb + ccc", Union((Arrow("aaa", "bbb"), c))),
        (
            "aaa.any(bbb) & aaa.all(ccc)",
            Intersection((Arrow("aaa", "bbb"), Arrow("aaa", "ccc", "all"))),
        ),
        ("aaa - nil", Exclusion(a, Nil())),
    ],
)
def test_precedence_and_structure(text: str, expected: Expr) -> None:
    assert expr(text) == expected
    assert expr(print_expr(expected)) == expected


def test_arrow_binds_tighter_than_every_operator() -> None:
    assert expr("aaa - bbb->ccc") == Exclusion(a, Arrow("bbb", "ccc"))


def test_self_parses_only_as_a_keyword() -> None:
    assert expr("aaa + self") == Union((a, SelfRef()))
    with pytest.raises(SchemaError, match="keyword"):
        parse_schema("definition doc { relation self: doc }")


def test_statements_need_no_newlines() -> None:
    schema = parse_schema(
        "use self definition user { relation rel: user permission myself = rel + self }"
    )
    assert schema.uses == frozenset({"self"})
    assert schema.definitions[0].permissions[0].expr == Union((RelationRef("rel"), SelfRef()))


def test_allowed_subject_forms() -> None:
    source = """
    definition doc {
      relation rrr: usr | usr:* | grp#member | usr with cav | usr with expiration
        | usr:* with cav and expiration | nsp/usr
    }"""
    allowed = parse_schema(source).definitions[0].relations[0].allowed
    assert allowed == (
        AllowedSubject("usr"),
        AllowedSubject("usr", wildcard=True),
        AllowedSubject("grp", "member"),
        AllowedSubject("usr", caveat="cav"),
        AllowedSubject("usr", expiration=True),
        AllowedSubject("usr", wildcard=True, caveat="cav", expiration=True),
        AllowedSubject("nsp/usr"),
    )


def test_keywords_are_names_where_spicedb_allows_them() -> None:
    source = """
    definition user {}
    definition token {
        relation with_container: user relation import: user
        permission partial = import + with_container
        permission all = partial
    }
    """
    schema = compile_schema(source)
    assert [p.name for p in schema.ast.definitions[1].permissions] == ["partial", "all"]
    # SpiceDB's own keywords are never names there, so not here either.
    with pytest.raises(SchemaError, match="`relation` is a keyword and cannot be a relation name"):
        compile_schema("definition user { relation relation: user }")


def test_caveat_text_is_captured_between_balanced_braces() -> None:
    source = """caveat cav(name string) {
      name == "}" && {'k': '{'}.k == '{' // }
        && name != '''}'''
    }
    definition user {}"""
    caveat = parse_schema(source).caveats[0]
    # Text with a triple-quoted string keeps its inner whitespace.
    assert (
        caveat.expression == "name == \"}\" && {'k': '{'}.k == '{' // }\n        && name != '''}'''"
    )


def test_caveat_text_is_dedented() -> None:
    source = "caveat cav(n int) {\n      n > 1 &&\n        n < 5\n    }"
    assert parse_schema(source).caveats[0].expression == "n > 1 &&\n  n < 5"


def test_doc_comments_attach_to_the_next_item() -> None:
    source = """
    /** the user */
    definition user {
      /**
       * first line
       *
       * third line
       */
      relation friend: user
      /* not a doc */
      /** nondelegable doc */ nondelegable permission pal = friend
    }
    /** trailing doc comments are dropped */
    """
    definition = parse_schema(source).definitions[0]
    assert definition.doc == "the user"
    assert definition.relations[0].doc == "first line\n\nthird line"
    assert definition.permissions[0].doc == "nondelegable doc"
    assert not definition.permissions[0].delegable


def test_spans_point_at_names() -> None:
    schema = parse_schema("definition user {}\ndefinition doc {\n  relation viewer: user\n}")
    relation = schema.definitions[1].relations[0]
    assert (relation.span.line, relation.span.column) == (3, 12)
    assert (relation.allowed[0].span.line, relation.allowed[0].span.column) == (3, 20)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "definition doc {",
            "1:17: expected `relation`, `permission`, `inherit` or `}`, found end of input",
        ),
        (
            "definition doc { permission ppp = }",
            "1:35: expected a relation, permission, `nil`, `self` or `(`, found `}`",
        ),
        (
            "definition doc { permission ppp = aaa.some(bbb) }",
            "1:39: expected `any` or `all`, found `some`",
        ),
        ("relation", "1:1: expected `definition`, `caveat`, `role` or `use`, found `relation`"),
        ("definition doc { relation rrr: }", "1:32: expected definition name, found `}`"),
        ("caveat cav(n int) {}", "1:8: caveat `cav` has an empty expression"),
        ("caveat cav(n int) { n == 'x }", "1:19: unterminated string in caveat expression"),
    ],
)
def test_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(source)
    assert str(info.value) == message


def test_arrows_inside_parentheses() -> None:
    assert expr("(aaa->bbb) & (aaa.all(ccc))") == Intersection(
        (Arrow("aaa", "bbb"), Arrow("aaa", "ccc", "all"))
    )


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    deep = "(" * 65 + "nil" + ")" * 65
    with pytest.raises(SchemaError, match="nested deeper than 64"):
        expr(deep)
    assert expr("(" * 64 + "nil" + ")" * 64) == Nil()
