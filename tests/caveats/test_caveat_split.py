"""Finding the top-level logical operators of CEL text."""

from __future__ import annotations

import pytest

from authz_service.caveats.split import (
    SplitError,
    comprehension_variables,
    split_logical,
    tokenize,
)


def shape(text: str) -> str:
    return split_logical(
        text,
        leaf=lambda source: f"[{source}]",
        negate=lambda operand: f"not{operand}",
        conjoin=lambda operands: "and(" + ", ".join(operands) + ")",
        disjoin=lambda operands: "or(" + ", ".join(operands) + ")",
        choose=lambda c, t, e: f"cond({c}, {t}, {e})",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", "[a]"),
        ("a && b || c", "or(and([a], [b]), [c])"),
        ("a || b && c", "or([a], and([b], [c]))"),
        ("a && b && c", "and([a], [b], [c])"),
        ("(a || b) && c", "and(or([a], [b]), [c])"),
        ("((a))", "[a]"),
        ("!(a || b)", "notor([a], [b])"),
        ("!!(a && b)", "notnotand([a], [b])"),
        # `!` binds tighter than `==` and member access is part of its operand.
        ("!a == b", "[!a == b]"),
        ("!(a) == b", "[!(a) == b]"),
        ("!(a).b && c", "and([!(a).b], [c])"),
        ("(a).b || c", "or([(a).b], [c])"),
        ("a ? b : c", "cond([a], [b], [c])"),
        ("a ? b : c ? d : e", "cond([a], [b], cond([c], [d], [e]))"),
        ("a || b ? c && d : e", "cond(or([a], [b]), and([c], [d]), [e])"),
        ("a ? (b ? c : d) : e", "cond([a], cond([b], [c], [d]), [e])"),
        ("f(a && b, c || d) && e", "and([f(a && b, c || d)], [e])"),
        ("{'k': a ? 1 : 2}.k == 1 || x", "or([{'k': a ? 1 : 2}.k == 1], [x])"),
        ("[a || b][0]", "[[a || b][0]]"),
        ("'&&' == a && b", "and(['&&' == a], [b])"),
        ('"(" == a || b', 'or(["(" == a], [b])'),
        ('"""x || y""" == a', '["""x || y""" == a]'),
        ("'''it's''' == a || b", "or(['''it's''' == a], [b])"),
        ("r'\\' == a || b", "or([r'\\' == a], [b])"),
        ("'\\'||' == a || b", "or(['\\'||' == a], [b])"),
        ("b'\\x00&&' == a && b", "and([b'\\x00&&' == a], [b])"),
        ("a // x && y\n || b", "or([a], [b])"),
        ("a != b && c", "and([a != b], [c])"),
    ],
)
def test_logical_structure(text: str, expected: str) -> None:
    assert shape(text) == expected


@pytest.mark.parametrize("text", ["a ? b", "(a", "a)", "'open", "a &&", "[a}"])
def test_unexpected_shapes_raise_split_error(text: str) -> None:
    with pytest.raises(SplitError):
        shape(text)


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("l.all(i, i > 0)", {"i"}),
        ("l.map(x, x * 2).filter(y, y > 1).exists_one(z, z == 2)", {"x", "y", "z"}),
        ("l.all(i, i > 0) && i == 1", set()),
        ("m.i == 1 && l.all(i, i > 0)", {"i"}),
        ("l.all(i, l.exists(j, i == j))", {"i", "j"}),
        ("size(l) > 0", set()),
    ],
)
def test_comprehension_variables_are_scoped(text: str, bound: set[str]) -> None:
    assert comprehension_variables(tokenize(text)) == bound
