"""An upper bound on the work one caveat evaluation may do, known before running it.

The CEL library has no cost limit, and it holds the interpreter lock while it runs, so
neither a thread nor a timeout can stop an evaluation once started: a caveat such as
`xs.all(a, xs.all(b, a + b >= 0))` over 3,000 numbers once froze the server for 7 s.
So the cost is bounded before evaluating, from the expression's shape and the sizes of
the values it is given:

    cost = tokens x (n + 1) ^ depth

`tokens` is the expression's length in tokens, `depth` the deepest nesting of
comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`), and `n` the
largest collection the expression could iterate: the longest list or map anywhere in
the bound values, or the number of elements a literal in the expression could hold
(its commas plus one), whichever is larger. Each level of nesting can iterate at most
`n` elements per element of the level above, and each step evaluates at most the
whole expression; strings are bounded by the context size limit instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from authz_service.caveats.split import SplitError, Token, tokenize

__all__ = ["CostModel", "cost_model"]

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


@dataclass(frozen=True, slots=True)
class CostModel:
    tokens: int
    depth: int
    literal: int  # elements a literal list or map in the expression could hold

    def estimate(self, values: Iterable[Any] = ()) -> int:
        """The bound for an evaluation over `values` (the bound parameters)."""
        n = max(self.literal, max((_largest(v) for v in values), default=0))
        return int(self.tokens * (n + 1) ** self.depth)


def cost_model(expression: str) -> CostModel:
    try:
        tokens = tokenize(expression)
    except SplitError:  # the library rejects such text anyway; stay conservative
        count = max(1, len(expression))
        return CostModel(count, sum(expression.count(m) for m in _MACROS), count)
    commas = sum(1 for t in tokens if t.kind == ",")
    return CostModel(max(1, len(tokens)), _depth(tokens), commas + 1)


def _depth(tokens: list[Token]) -> int:
    """The deepest nesting of `.macro(` calls."""
    opened: list[bool] = []  # for each open bracket: is it a macro's argument list?
    depth = deepest = 0
    for index, token in enumerate(tokens):
        if token.kind in ("(", "[", "{"):
            is_macro = (
                token.kind == "("
                and index >= 2
                and tokens[index - 1].kind == "ident"
                and tokens[index - 1].text in _MACROS
                and tokens[index - 2].kind == "."
            )
            opened.append(is_macro)
            depth += is_macro
            deepest = max(deepest, depth)
        elif token.kind in (")", "]", "}") and opened:
            depth -= opened.pop()
    return deepest


def _largest(value: Any) -> int:
    """The longest list or map within `value` (0 for scalars)."""
    largest = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            largest = max(largest, len(item))
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            largest = max(largest, len(item))
            stack.extend(item)
    return largest
