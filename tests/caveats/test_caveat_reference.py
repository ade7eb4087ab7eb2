"""The caveat evaluator against a tiny reference on generated expressions.

The reference applies cel-go's partial-evaluation rules to a Python tree directly; the
evaluator under test only sees the printed CEL text. Contexts leave parameters out, so
this covers the splitting at `&&`/`||`/`!`/`?:` (including precedence and redundant
parentheses) as well as the three-valued combination.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz_service.caveats import CaveatResult, compile_caveat
from authz_service.errors import CaveatError

PARAMETERS = [("b0", "bool"), ("b1", "bool"), ("n", "int"), ("m", "map<bool>"), ("s", "string")]
TRICKY = "a && (b || !c) ? 'd' : e"
# leaf text -> (parameter it reads, how to evaluate it from that parameter's value)
LEAVES: dict[str, tuple[str | None, Any]] = {
    "true": (None, lambda _: True),
    "false": (None, lambda _: False),
    "b0": ("b0", lambda v: v),
    "b1": ("b1", lambda v: v),
    "n > 1": ("n", lambda v: v > 1),
    "m.k": ("m", lambda v: v.get("k", FAIL)),
    f'"{TRICKY}" == s': ("s", lambda v: v == TRICKY),
}
VALUES: dict[str, list[Any]] = {
    "b0": [True, False],
    "b1": [True, False],
    "n": [0, 5],
    "m": [{"k": True}, {"k": False}, {}],
    "s": ["", TRICKY],
}


class _Fail:
    pass


FAIL = _Fail()


@dataclass(frozen=True)
class Unknown:
    names: frozenset[str]


@dataclass(frozen=True)
class Node:
    op: str  # "leaf", "not", "and", "or", "cond"
    parts: tuple[Node, ...] = ()
    text: str = ""


def reference(node: Node, context: dict[str, Any]) -> Any:
    if node.op == "leaf":
        parameter, evaluate = LEAVES[node.text]
        if parameter is not None and parameter not in context:
            return Unknown(frozenset({parameter}))
        return evaluate(context.get(parameter) if parameter else None)
    if node.op == "not":
        inner = reference(node.parts[0], context)
        return not inner if isinstance(inner, bool) else inner
    if node.op == "cond":
        condition = reference(node.parts[0], context)
        if not isinstance(condition, bool):
            return condition
        return reference(node.parts[1] if condition else node.parts[2], context)
    absorbing = node.op == "or"
    outcomes = [reference(part, context) for part in node.parts]
    if absorbing in outcomes:
        return absorbing
    unknown = [o for o in outcomes if isinstance(o, Unknown)]
    if unknown:
        return Unknown(frozenset().union(*(o.names for o in unknown)))
    return FAIL if FAIL in outcomes else not absorbing


PRECEDENCE = {"cond": 0, "or": 1, "and": 2, "not": 3, "leaf": 4}


def render(node: Node, extra: Any) -> str:
    """Print with only the parentheses CEL needs, plus some drawn redundant ones."""

    def wrap(child: Node, minimum: int) -> str:
        text = render(child, extra)
        needs = PRECEDENCE[child.op] < minimum
        return f"({text})" if needs or extra.draw(st.booleans()) else text

    if node.op == "leaf":
        return node.text
    if node.op == "not":
        child = node.parts[0]
        atomic = child.op == "leaf" and child.text in ("true", "false", "b0", "b1", "m.k")
        return "!" + (render(child, extra) if atomic else f"({render(child, extra)})")
    if node.op == "cond":
        condition, then, otherwise = node.parts
        return f"{wrap(condition, 1)} ? {wrap(then, 1)} : {wrap(otherwise, 0)}"
    joiner = " || " if node.op == "or" else " && "
    return joiner.join(wrap(part, PRECEDENCE[node.op]) for part in node.parts)


leaves = st.sampled_from(sorted(LEAVES)).map(lambda text: Node("leaf", text=text))
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        inner.map(lambda child: Node("not", (child,))),
        st.lists(inner, min_size=2, max_size=3).map(lambda parts: Node("and", tuple(parts))),
        st.lists(inner, min_size=2, max_size=3).map(lambda parts: Node("or", tuple(parts))),
        st.tuples(inner, inner, inner).map(lambda parts: Node("cond", parts)),
    ),
    max_leaves=8,
)


@st.composite
def contexts(draw: Any) -> dict[str, Any]:
    return {
        name: draw(st.sampled_from(values))
        for name, values in VALUES.items()
        if draw(st.booleans())
    }


def outcome_of(caveat: Any, context: dict[str, Any]) -> Any:
    try:
        result: CaveatResult = caveat.evaluate(context)
    except CaveatError:
        return FAIL
    if result.value is None:
        return Unknown(frozenset(result.missing))
    return result.value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, context=contexts(), data=st.data())
def test_matches_reference(tree: Node, context: dict[str, Any], data: Any) -> None:
    text = render(tree, data)
    caveat = compile_caveat("generated", PARAMETERS, text)
    assert outcome_of(caveat, context) == reference(tree, context), text


@settings(max_examples=150, deadline=None)
@given(tree=trees, context=contexts(), data=st.data())
def test_definite_answers_hold_for_every_completion(
    tree: Node, context: dict[str, Any], data: Any
) -> None:
    # Independent of the reference: a definite answer given without some parameters
    # must be what every full context that extends this one evaluates to.
    caveat = compile_caveat("generated", PARAMETERS, render(tree, data))
    answer = outcome_of(caveat, context)
    if not isinstance(answer, bool):
        return
    absent = [name for name in VALUES if name not in context]
    for values in itertools.product(*(VALUES[name] for name in absent)):
        full = {**context, **dict(zip(absent, values, strict=True))}
        assert outcome_of(caveat, full) == answer
