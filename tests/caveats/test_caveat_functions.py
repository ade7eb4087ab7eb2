"""A caveat may call only what the CEL environment defines: anything else is refused when
it is compiled, naming the function and where it is called. The library looks functions
up only when a call runs, so `name.startswith('a')` (for `startsWith`) once compiled and
then failed every check, blaming the request's context."""

from __future__ import annotations

from typing import Any

import pytest

from authz_service.caveats import compile_caveat
from authz_service.caveats.functions import CALLABLE
from authz_service.errors import CaveatError


@pytest.mark.parametrize(
    ("parameters", "expression", "message"),
    [
        (
            [("name", "string")],
            "name.startswith('a')",
            "caveat `c` calls undefined function `startswith` at 1:6 (did you mean `startsWith`?)",
        ),
        (
            [("name", "string")],
            "no_such_function(name)",
            "caveat `c` calls undefined function `no_such_function` at 1:1",
        ),
        (  # the first in the source is named, on whatever line it is
            [("name", "string")],
            "name == 'a' ||\n  name.lowerAscii() == no_such(name)",
            "caveat `c` calls undefined function `lowerAscii` at 2:8",
        ),
        (  # inside a macro, whose own names (`all`, `x`) are fine
            [("names", "list<string>")],
            "names.all(x, x.trim() != '')",
            "caveat `c` calls undefined function `trim` at 1:16",
        ),
        (  # cel-go has `bool()`; the CEL library here does not
            [("flag", "string")],
            "bool(flag)",
            "caveat `c` calls undefined function `bool` at 1:1",
        ),
        (  # a method of optional values, which no caveat can make
            [("x", "any")],
            "x.orValue(1) == 1",
            "caveat `c` calls undefined function `orValue` at 1:3",
        ),
        (  # a name in a string or a comment is not a call
            [("name", "string")],
            "name == 'nope(1)' // nope(2)\n|| nope(3)",
            "caveat `c` calls undefined function `nope` at 2:4",
        ),
    ],
)
def test_calls_to_undefined_functions_are_refused(
    parameters: list[tuple[str, str]], expression: str, message: str
) -> None:
    with pytest.raises(CaveatError) as raised:
        compile_caveat("c", parameters, expression)
    assert raised.value.message == message
    assert raised.value.field == "caveat"


def test_a_stored_caveat_may_still_call_an_undefined_function() -> None:
    """A schema stored before the check existed is read back without it (see
    `compile_schema`): refusing it would leave the service without a schema."""
    caveat = compile_caveat(
        "c", [("name", "string")], "name.startswith('a')", allow_undefined_functions=True
    )
    with pytest.raises(CaveatError, match="undefined variable or function `startswith`"):
        caveat.evaluate({"name": "alice"})


# One caveat for every name in CALLABLE, with a context it evaluates to true on: each is
# accepted, and the library really defines it (else evaluating would fail).
EXAMPLES: dict[str, tuple[list[tuple[str, str]], str, dict[str, Any]]] = {
    "!_": ([("b", "bool")], "!b", {"b": False}),
    "-_": ([("n", "int")], "-n == -1", {"n": 1}),
    "@in": ([("n", "int")], "n in [1, 2]", {"n": 1}),
    "@not_strictly_false": ([("l", "list<int>")], "l.all(x, x > 0)", {"l": [1]}),
    "_!=_": ([("n", "int")], "n != 2", {"n": 1}),
    "_%_": ([("n", "int")], "n % 2 == 1", {"n": 1}),
    "_&&_": ([("b", "bool")], "b && true", {"b": True}),
    "_*_": ([("n", "int")], "n * 2 == 2", {"n": 1}),
    "_+_": ([("n", "int")], "n + 1 == 2", {"n": 1}),
    "_-_": ([("n", "int")], "n - 1 == 0", {"n": 1}),
    "_/_": ([("d", "double")], "d / 2.0 == 0.5", {"d": 1.0}),
    "_<=_": ([("n", "int")], "n <= 1", {"n": 1}),
    "_<_": ([("n", "int")], "n < 2", {"n": 1}),
    "_==_": ([("n", "int")], "n == 1", {"n": 1}),
    "_>=_": ([("n", "int")], "n >= 1", {"n": 1}),
    "_>_": ([("n", "int")], "n > 0", {"n": 1}),
    "_?_:_": ([("b", "bool")], "b ? true : false", {"b": True}),
    "_[_]": ([("m", "map<int>")], "m['k'] == 1", {"m": {"k": 1}}),
    "_||_": ([("b", "bool")], "b || false", {"b": True}),
    "bytes": ([("s", "string")], "bytes(s) == b'a'", {"s": "a"}),
    "contains": ([("s", "string")], "s.contains('b')", {"s": "abc"}),
    "double": ([("n", "int")], "double(n) == 1.0", {"n": 1}),
    "duration": ([("d", "duration")], "d > duration('1s')", {"d": "2s"}),
    "dyn": ([("n", "int")], "dyn(n) == 1", {"n": 1}),
    "endsWith": ([("s", "string")], "s.endsWith('c')", {"s": "abc"}),
    "getDate": ([("t", "timestamp")], "t.getDate() == 2", {"t": "2024-03-02T10:20:30.456Z"}),
    "getDayOfMonth": (
        [("t", "timestamp")],
        "t.getDayOfMonth() == 1",
        {"t": "2024-03-02T10:20:30.456Z"},
    ),
    "getDayOfWeek": (
        [("t", "timestamp")],
        "t.getDayOfWeek() == 6",
        {"t": "2024-03-02T10:20:30.456Z"},
    ),
    "getDayOfYear": (
        [("t", "timestamp")],
        "t.getDayOfYear() == 61",
        {"t": "2024-03-02T10:20:30.456Z"},
    ),
    "getFullYear": (
        [("t", "timestamp")],
        "t.getFullYear() == 2024",
        {"t": "2024-03-02T10:20:30.456Z"},
    ),
    "getHours": ([("d", "duration")], "d.getHours() == 2", {"d": "2h30m"}),
    "getMilliseconds": (
        [("t", "timestamp")],
        "t.getMilliseconds() == 456",
        {"t": "2024-03-02T10:20:30.456Z"},
    ),
    "getMinutes": ([("d", "duration")], "d.getMinutes() == 150", {"d": "2h30m"}),
    "getMonth": ([("t", "timestamp")], "t.getMonth() == 2", {"t": "2024-03-02T10:20:30.456Z"}),
    "getSeconds": (
        [("t", "timestamp")],
        "t.getSeconds() == 30",
        {"t": "2024-03-02T10:20:30.456Z"},
    ),
    "in_cidr": ([("ip", "ipaddress")], "ip.in_cidr('10.0.0.0/8')", {"ip": "10.1.2.3"}),
    "int": ([("d", "double")], "int(d) == 1", {"d": 1.5}),
    "matches": ([("s", "string")], "s.matches('^a.c$')", {"s": "abc"}),
    "size": (
        [("s", "string"), ("l", "list<int>")],
        "size(s) == 3 && l.size() == 1",
        {"s": "abc", "l": [1]},
    ),
    "startsWith": ([("s", "string")], "s.startsWith('a')", {"s": "abc"}),
    "string": ([("n", "int")], "string(n) == '1'", {"n": 1}),
    "timestamp": (
        [("t", "timestamp")],
        "t > timestamp('2020-01-01T00:00:00Z')",
        {"t": "2024-03-02T10:20:30Z"},
    ),
    "type": ([("n", "int")], "type(n) == int", {"n": 1}),
    "uint": ([("n", "int")], "uint(n) == 1u", {"n": 1}),
}

# Macros expand to operators (`all` to `&&` and `@not_strictly_false`, ...), and `has` to
# a field test: none of them is a function the expression calls.
MACROS: dict[str, tuple[list[tuple[str, str]], str, dict[str, Any]]] = {
    "has": ([("m", "map<int>")], "has(m.k)", {"m": {"k": 1}}),
    "all": ([("l", "list<int>")], "l.all(x, x > 0)", {"l": [1, 2]}),
    "exists": ([("l", "list<int>")], "l.exists(x, x > 1)", {"l": [1, 2]}),
    "exists_one": ([("l", "list<int>")], "l.exists_one(x, x > 1)", {"l": [1, 2]}),
    "map": ([("l", "list<int>")], "l.map(x, x * 2) == [2, 4]", {"l": [1, 2]}),
    "map-filter": ([("l", "list<int>")], "l.map(x, x > 1, x) == [2]", {"l": [1, 2]}),
    "filter": ([("l", "list<int>")], "l.filter(x, x > 1) == [2]", {"l": [1, 2]}),
}


def test_every_callable_name_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(CALLABLE)


@pytest.mark.parametrize("name", sorted({**EXAMPLES, **MACROS}))
def test_every_function_and_macro_the_environment_defines_is_accepted(name: str) -> None:
    parameters, expression, context = {**EXAMPLES, **MACROS}[name]
    caveat = compile_caveat("c", parameters, expression)
    assert caveat.evaluate(context).value is True
