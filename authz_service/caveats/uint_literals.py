"""SpiceDB gives `uint` parameters the CEL type `int`, so `count < 3u` (int and uint
operands) has no overload there and SpiceDB refuses the schema. The CEL library used here
compares the two at run time, so without this check we would load such a schema. It finds
the first `uint` parameter written directly beside a uint literal (`3u`, `0x1Fu`) across a
comparison or arithmetic operator, outside string literals and comments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from authz_service.caveats.split import SplitError, tokenize
from authz_service.caveats.types import CaveatType
from authz_service.errors import CaveatError, echo

__all__ = ["refuse_uint_literals"]

_OPERATORS = r"==|!=|<=|>=|<|>|\+|-|\*|/|%"
_LITERALS = r"(?:0x[0-9A-Fa-f]+|\d+)[uU]"


def _code_only(expression: str) -> str:
    """The expression with string literals and comments blanked out (same offsets)."""
    try:
        tokens = tokenize(expression)
    except SplitError:
        return expression
    blank = list(" " * len(expression))
    for token in tokens:
        if token.kind != "string":
            blank[token.start : token.end] = expression[token.start : token.end]
    return "".join(blank)


def refuse_uint_literals(
    name: str, parameters: Sequence[tuple[str, CaveatType]], expression: str
) -> None:
    code = _code_only(expression)
    uints = [re.escape(p) for p, kind in parameters if kind.name == "uint"]
    if not uints:
        return
    names = "|".join(uints)
    found = re.search(
        rf"(?<![\w.])(?P<p1>{names})\s*(?P<o1>{_OPERATORS})\s*(?P<l1>{_LITERALS})\b"
        rf"|(?<![\w.])(?P<l2>{_LITERALS})\s*(?P<o2>{_OPERATORS})\s*(?P<p2>{names})(?![\w(])",
        code,
    )
    if found is None:
        return
    parameter = found.group("p1") or found.group("p2")
    literal = found.group("l1") or found.group("l2")
    operator = found.group("o1") or found.group("o2")
    raise CaveatError(
        f"caveat `{echo(name)}` applies `{operator}` to `uint` parameter `{echo(parameter)}` and the "
        f"uint literal `{literal}`: SpiceDB types `uint` parameters as CEL `int`, so no "
        f"overload applies to (int, uint); write `{literal[:-1]}`",
        field="caveat",
        value=name,
    )
