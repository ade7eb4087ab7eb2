"""Validation at schema-write time: every rejection names the caveat in backticks."""

from __future__ import annotations

import pytest

from authz_service.caveats import compile_caveat
from authz_service.errors import CaveatError


@pytest.mark.parametrize(
    ("parameters", "expression", "message"),
    [
        (
            [("a", "int"), ("a", "string")],
            "a == 1",
            "caveat `c` declares parameter `a` more than once",
        ),
        (
            [("a", "integer")],
            "a == 1",
            "caveat `c` parameter `a`: unknown caveat parameter type `integer`",
        ),
        (
            [("a", "list")],
            "a == 1",
            "caveat `c` parameter `a`: caveat parameter type `list` needs one",
        ),
        ([("in", "int")], "true", "caveat `c` has invalid parameter name `in`"),
        ([("a-b", "int")], "true", "caveat `c` has invalid parameter name `a-b`"),
        ([("a", "int")], "a ==", "caveat `c` has a syntax error at 1:5: mismatched input '<EOF>'"),
        ([("a", "int")], "a == 1)", "caveat `c` has a syntax error at 1:7: extraneous input ')'"),
        ([("a", "int")], "'open", "caveat `c` has a syntax error at 1:1: token recognition error"),
        ([("a", "int")], "", "caveat `c` has a syntax error at 1:1"),
        (
            [("a", "bool")],
            "a ? a ? true : false : a",
            "caveat `c` has a syntax error at 1:7: mismatched input '?'",
        ),
        ([("a", "int")], "a == b", "caveat `c` references undeclared parameter `b`"),
        (
            [("a", "int")],
            "z == y || a == 1",
            "caveat `c` references undeclared parameters `y`, `z`",
        ),
        # The macro variable is bound, but the same name used outside it is not.
        ([("l", "list<int>")], "l.all(i, i > 0) && i == 1", "caveat `c` references undeclared"),
        ([("a", "int")], "a", "caveat `c` must evaluate to a boolean, but `a` is int"),
        ([("a", "int")], "a + 1", "caveat `c` must evaluate to a boolean, but `a + 1` is int"),
        ([("a", "string")], "'x'", "caveat `c` must evaluate to a boolean, but `'x'` is string"),
        ([("a", "int")], "a == 1 && a", "caveat `c` must evaluate to a boolean, but `a` is int"),
        (
            [("a", "int")],
            "a > 0 ? true : 3",
            "caveat `c` must evaluate to a boolean, but `3` is int",
        ),
        ([("a", "int")], "!(a)", "caveat `c` must evaluate to a boolean, but `a` is int"),
        ([("a", "int")], "null", "caveat `c` must evaluate to a boolean, but `null` is null"),
        (
            [("a", "int")],
            "a < 'x'",
            "caveat `c` applies an operator or function to operands of the wrong type in `a < 'x'`",
        ),
        (
            [("a", "timestamp"), ("b", "int")],
            "a > b || b == 1",
            "caveat `c` applies an operator or function to operands of the wrong type in `a > b`",
        ),
        (
            [("s", "string"), ("cidr", "string")],
            "s.in_cidr(cidr)",
            "caveat `c` applies an operator or function to operands of the wrong type",
        ),
        # A type error is refused even where zeros also make a NaN.
        (
            [("d", "double")],
            "d / d < 'x'",
            "caveat `c` applies an operator or function to operands of the wrong type",
        ),
        (
            [("i", "int"), ("t", "timestamp")],
            "double(i) / double(i) < t",
            "caveat `c` applies an operator or function to operands of the wrong type",
        ),
        (  # the second samples change numbers only, so this branch is taken again
            [("a", "bool")],
            "(a ? 1 : 'x') < 2",
            "caveat `c` applies an operator or function to operands of the wrong type",
        ),
    ],
)
def test_invalid_caveats_are_rejected(
    parameters: list[tuple[str, str]], expression: str, message: str
) -> None:
    with pytest.raises(CaveatError) as raised:
        compile_caveat("c", parameters, expression)
    assert raised.value.message.startswith(message), raised.value.message
    assert raised.value.field == "caveat"
    assert "Check that" not in raised.value.message
    assert "| " not in raised.value.message  # no source echo from the CEL library


@pytest.mark.parametrize(
    ("parameters", "expression"),
    [
        # Data-dependent failures on the sample values are not type errors.
        ([("m", "map<int>")], "m.missing == 1"),
        ([("l", "list<int>")], "l[0] == 1"),
        ([("s", "string")], "timestamp(s) > timestamp('2020-01-01T00:00:00Z')"),
        ([("x", "int")], "10 / x == 1"),
        # Zeros make 0.0 / 0.0, a NaN, which the library cannot order: not a type error.
        ([("used", "double"), ("quota", "double")], "used / quota < 0.9"),
        ([("d", "double")], "d / d > 0.5"),
        ([("i", "int")], "double(i) / double(i) < 1.0"),
        (
            [("used", "double"), ("quota", "double")],
            "(used - quota) / quota < 0.1 || used / (quota - used) >= 2.0",
        ),
        # `any` values may be of any type, so nothing is concluded from a sample.
        ([("x", "any")], "x"),
        ([("x", "any")], "x > 1"),
        # uint travels as CEL int; mixing with `u` literals is a limitation of ours.
        ([("n", "uint")], "n + 1 > 2"),
        # Names bound by macros are not parameters.
        ([("l", "list<int>")], "l.exists(x, x > 1) || l.map(y, y * 2).size() > 1"),
        ([("l", "list<int>")], "l.filter(v, v > 0).exists_one(w, w == 1)"),
        ([("a", "bool")], "a // a comment: && || ? :\n && true"),
        # CEL's type names are defined, not parameters (none may be named so).
        ([("x", "any")], "type(x) == int || type(x) == string || type(x) == list"),
        ([("a", "string")], "a == 'x && y' || a == \"(\" || a == r'\\'"),
    ],
)
def test_valid_caveats_compile(parameters: list[tuple[str, str]], expression: str) -> None:
    caveat = compile_caveat("c", parameters, expression)
    assert caveat.expression == expression


def test_a_caveat_with_no_parameters_is_a_constant() -> None:
    assert compile_caveat("always", [], "true").evaluate({}).value is True
