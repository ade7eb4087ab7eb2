"""Evaluation with absent parameters: definite where the logic allows, else the names."""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.caveats import CaveatResult, compile_caveat
from authz_service.errors import CaveatError

BOOLS = [("a", "bool"), ("b", "bool"), ("c", "bool")]


def run(expression: str, context: dict[str, Any], parameters: Any = None) -> CaveatResult:
    return compile_caveat("c", parameters or BOOLS, expression).evaluate(context)


@pytest.mark.parametrize(
    ("expression", "context", "expected"),
    [
        # `||` with the other operand true is true, whichever side is absent.
        ("a || b", {"b": True}, CaveatResult(True)),
        ("a || b", {"a": True}, CaveatResult(True)),
        ("a || b || c", {"c": True}, CaveatResult(True)),
        # `&&` with the other operand false is false, whichever side is absent.
        ("a && b", {"b": False}, CaveatResult(False)),
        ("a && b", {"a": False}, CaveatResult(False)),
        ("a && b && c", {"b": False}, CaveatResult(False)),
        # Otherwise undecided, naming what is needed.
        ("a || b", {"b": False}, CaveatResult(None, ("a",))),
        ("a && b", {"a": True}, CaveatResult(None, ("b",))),
        ("a || b", {}, CaveatResult(None, ("a", "b"))),
        ("a && (b || c)", {"a": True}, CaveatResult(None, ("b", "c"))),
        # Only the undecided parts are named: `a && false` is false without `a`.
        ("(a && false) || b", {}, CaveatResult(None, ("b",))),
        ("a && b || c", {"a": False}, CaveatResult(None, ("c",))),
        # `!` over a group, and ternaries.
        ("!(a || b)", {"a": True}, CaveatResult(False)),
        ("!(a && b)", {"b": False}, CaveatResult(True)),
        ("!(a && b)", {"b": True}, CaveatResult(None, ("a",))),
        ("!!(a || b)", {"b": True}, CaveatResult(True)),
        ("!a", {}, CaveatResult(None, ("a",))),
        ("a ? b : c", {"b": True, "c": True}, CaveatResult(None, ("a",))),
        ("a ? b : c", {"a": True}, CaveatResult(None, ("b",))),
        ("a ? b : c", {"a": False, "c": False}, CaveatResult(False)),
        ("a ? true : b ? c : false", {"a": False, "b": False}, CaveatResult(False)),
        # Parameters declared but not referenced are never reported.
        ("a || b", {"a": False, "b": False}, CaveatResult(False)),
        ("a", {}, CaveatResult(None, ("a",))),
    ],
)
def test_three_valued_logic(
    expression: str, context: dict[str, Any], expected: CaveatResult
) -> None:
    assert run(expression, context) == expected


def test_unreferenced_declared_parameters_are_not_missing() -> None:
    assert run("a || b", {"b": False}) == CaveatResult(None, ("a",))  # `c` not named


def test_a_leaf_names_every_absent_parameter_it_references() -> None:
    parameters = [("x", "int"), ("y", "int")]
    assert run("x + y > 1", {}, parameters) == CaveatResult(None, ("x", "y"))
    assert run("x + y > 1", {"y": 1}, parameters) == CaveatResult(None, ("x",))


def test_comprehensions_decide_without_unneeded_parameters() -> None:
    parameters = [("l", "list<int>"), ("x", "int")]
    assert run("l.exists(i, i == x)", {"l": []}, parameters) == CaveatResult(False)
    assert run("l.exists(i, i == x)", {"l": [1]}, parameters) == CaveatResult(None, ("x",))


def test_logic_inside_a_leaf_also_absorbs_absent_parameters() -> None:
    # The library's own `||` handles this: no top-level split is involved.
    assert run("[a || true][0]", {}) == CaveatResult(True)


def test_unknown_beats_an_error_in_the_other_operand() -> None:
    # As in cel-go: `error || unknown` is unknown, since a value for `a` could decide it.
    parameters = [("m", "map<int>"), ("a", "bool")]
    assert run("m.k == 1 || a", {"m": {}}, parameters) == CaveatResult(None, ("a",))
    assert run("m.k == 1 && a", {"m": {}}, parameters) == CaveatResult(None, ("a",))
    assert run("a || m.k == 1", {"m": {}}, parameters) == CaveatResult(None, ("a",))


def test_an_error_with_no_unknown_left_still_fails() -> None:
    parameters = [("m", "map<int>"), ("a", "bool"), ("b", "bool")]
    with pytest.raises(CaveatError, match="caveat `c` failed: no such key `k`"):
        run("m.k == 1 || (a && b)", {"m": {}, "a": False}, parameters)


def test_within_a_leaf_the_first_failure_decides_as_in_cel_go() -> None:
    # cel-go evaluates binary operands left to right and returns the first error or
    # unknown; the library fails at the first problem in the same order.
    parameters = [("m", "map<int>"), ("x", "int")]
    assert run("x == m.k", {"m": {}}, parameters) == CaveatResult(None, ("x",))
    with pytest.raises(CaveatError, match="no such key `k`"):
        run("m.k == x", {"m": {}}, parameters)


def test_missing_in_the_spicedb_map_case_short_circuits() -> None:
    parameters = [("somemap", "map<any>"), ("other", "int")]
    expression = "somemap.foo == 42 && other < 56"
    assert run(expression, {"somemap": {"foo": 41}}, parameters) == CaveatResult(False)
    assert run(expression, {"somemap": {"foo": 42}}, parameters) == CaveatResult(None, ("other",))
    assert run(expression, {"other": 57}, parameters) == CaveatResult(False)
