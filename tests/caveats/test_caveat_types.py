from __future__ import annotations

import pytest

from authz_service.caveats import CaveatType, canonical_caveat_type_text, parse_caveat_type
from authz_service.errors import CaveatError, InvalidArgument

SCALARS = [
    "any",
    "bool",
    "bytes",
    "double",
    "duration",
    "int",
    "ipaddress",
    "string",
    "timestamp",
    "uint",
]


@pytest.mark.parametrize("name", SCALARS)
def test_scalar_types_parse_and_print(name: str) -> None:
    parsed = parse_caveat_type(name)
    assert parsed == CaveatType(name)
    assert canonical_caveat_type_text(parsed) == name


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("list<string>", "list<string>"),
        ("map<any>", "map<any>"),
        (" list < int > ", "list<int>"),
        ("map<list<ipaddress>>", "map<list<ipaddress>>"),
        ("list<map<timestamp>>", "list<map<timestamp>>"),
    ],
)
def test_generic_types_parse_and_print_canonically(text: str, canonical: str) -> None:
    parsed = parse_caveat_type(text)
    assert canonical_caveat_type_text(parsed) == canonical
    assert str(parsed) == canonical
    assert parse_caveat_type(canonical) == parsed


def test_types_are_hashable_values() -> None:
    assert {parse_caveat_type("list<int>"), parse_caveat_type("list< int >")} == {
        CaveatType("list", (CaveatType("int"),))
    }
    assert parse_caveat_type("list<int>") != parse_caveat_type("list<uint>")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo", "unknown caveat parameter type `foo`"),
        ("list<foo>", "unknown caveat parameter type `foo` in `list<foo>`"),
        ("Int", "unknown caveat parameter type `Int`"),
        ("list", "caveat parameter type `list` needs one type argument, as in `list<string>`"),
        ("map", "caveat parameter type `map` needs one type argument, as in `map<string>`"),
        ("int<string>", "caveat parameter type `int` takes no type argument, in `int<string>`"),
        ("map<string, int>", "caveat parameter type `map` takes exactly one type argument"),
        ("list<int", "caveat parameter type `list` takes exactly one type argument"),
        ("list<int>>", "invalid caveat parameter type `list<int>>`"),
        ("", "invalid caveat parameter type ``"),
        ("list<>", "unknown caveat parameter type `>` in `list<>`"),
    ],
)
def test_bad_types_raise_caveat_error_naming_the_text(text: str, message: str) -> None:
    with pytest.raises(CaveatError) as raised:
        parse_caveat_type(text)
    assert raised.value.message.startswith(message)
    assert isinstance(raised.value, InvalidArgument)
