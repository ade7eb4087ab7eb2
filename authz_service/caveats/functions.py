"""The functions a caveat may call: those the CEL library defines, and `in_cidr`.

The library looks a function up only when a call runs, so a caveat that calls one it
does not define (`name.startswith('a')` for `startsWith`) would compile, and then every
check through it would fail for a reason no request can fix. SpiceDB refuses such a
schema, and so does `compile_caveat`, by the names below.

`_LIBRARY` is what the library (cel 0.14.5 under common-expression-language 0.10) defines,
less the methods of optional values (`value`, `hasValue`, `or`, `orValue`): no caveat can
make one here, since `optional.of(x)` reads as a call on an undeclared parameter
`optional` and the library does not parse `[?` or `.?`. tests/caveats/test_caveat_functions.py runs every name here, so a
library that drops one fails there.
"""

from __future__ import annotations

import difflib
import itertools

from authz_service.caveats.ipaddr import IP_FUNCTIONS
from authz_service.caveats.split import SplitError, tokenize
from authz_service.errors import CaveatError, echo

__all__ = ["CALLABLE", "refuse_undefined_functions"]

# The names the parser gives operators, and the macros' expansions (`all` becomes `&&`
# and `@not_strictly_false`).
_OPERATORS = frozenset(
    {
        "!_",
        "-_",
        "@in",
        "@not_strictly_false",
        "_!=_",
        "_%_",
        "_&&_",
        "_*_",
        "_+_",
        "_-_",
        "_/_",
        "_<=_",
        "_<_",
        "_==_",
        "_>=_",
        "_>_",
        "_?_:_",
        "_[_]",
        "_||_",
    }
)

_LIBRARY = frozenset(
    {
        "bytes",
        "contains",
        "double",
        "duration",
        "dyn",
        "endsWith",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getFullYear",
        "getHours",
        "getMilliseconds",
        "getMinutes",
        "getMonth",
        "getSeconds",
        "int",
        "matches",
        "size",
        "startsWith",
        "string",
        "timestamp",
        "type",
        "uint",
    }
)

CALLABLE = _OPERATORS | _LIBRARY | IP_FUNCTIONS.keys()
"""Every name `cel.Program.functions()` may list for a caveat that compiles."""

_NAMED = sorted(_LIBRARY | IP_FUNCTIONS.keys())  # what a misspelt call may have meant


def refuse_undefined_functions(name: str, functions: list[str], expression: str) -> None:
    """Raise CaveatError for the first call in `expression` to a function not in
    CALLABLE; `functions` is what the library found the expression calls."""
    undefined = set(functions) - CALLABLE
    if not undefined:
        return
    function, where = _first_call(expression, undefined)
    close = difflib.get_close_matches(function, _NAMED, n=1, cutoff=0.8)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    raise CaveatError(
        f"caveat `{echo(name)}` calls undefined function `{echo(function)}`{where}{hint}",
        field="caveat",
        value=name,
    )


def _first_call(expression: str, names: set[str]) -> tuple[str, str]:
    """The first of `names` called in `expression`, and ` at line:column` (1-based, as
    the library's syntax errors) or "" when the scan cannot place it."""
    try:
        tokens = tokenize(expression)
    except SplitError:
        tokens = []
    for token, after in itertools.pairwise(tokens):
        if token.kind == "ident" and token.text in names and after.kind == "(":
            line = expression.count("\n", 0, token.start) + 1
            column = token.start - expression.rfind("\n", 0, token.start)
            return token.text, f" at {line}:{column}"
    return min(names), ""
