"""Caveat signatures: parameter names and types (`int`, `list<string>`, `map<any>`, ...).

The set mirrors SpiceDB's caveat type system. `map<T>` always has string keys, so its
single type argument is the value type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from authz_service.errors import CaveatError, echo

__all__ = [
    "CEL_TYPE_IDENTIFIERS",
    "CaveatType",
    "canonical_caveat_type_text",
    "parse_caveat_type",
    "parse_parameters",
]

SCALAR_TYPE_NAMES = frozenset(
    {
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
    }
)
GENERIC_TYPE_NAMES = frozenset({"list", "map"})

_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(.))")
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# CEL reserves these; a parameter so named could never be referenced.
_RESERVED = frozenset(
    {
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "namespace",
        "null",
        "package",
        "return",
        "true",
        "var",
        "void",
        "while",
    }
)


# CEL's own identifiers for types, as in `type(x) == int`. SpiceDB declares parameters in
# an environment that already has them, so it refuses a parameter of that name
# ("overlapping identifier").
CEL_TYPE_IDENTIFIERS = frozenset(
    {"bool", "bytes", "double", "int", "list", "map", "null_type", "string", "type", "uint"}
)


@dataclass(frozen=True, slots=True)
class CaveatType:
    """A parsed parameter type. `args` holds the element type of `list` and `map`."""

    name: str
    args: tuple[CaveatType, ...] = ()

    def __str__(self) -> str:
        return canonical_caveat_type_text(self)


def parse_parameters(
    name: str, parameters: Sequence[tuple[str, str]]
) -> tuple[tuple[str, CaveatType], ...]:
    """Check and parse the signature of caveat `name`: names, duplicates, types."""
    typed: list[tuple[str, CaveatType]] = []
    seen: set[str] = set()
    for parameter, type_text in parameters:
        if not _PARAMETER_NAME.fullmatch(parameter) or parameter in _RESERVED:
            raise CaveatError(
                f"caveat `{echo(name)}` has invalid parameter name `{echo(parameter)}`",
                field="caveat",
                value=name,
            )
        if parameter in CEL_TYPE_IDENTIFIERS:
            raise CaveatError(
                f"caveat `{echo(name)}` parameter `{parameter}` overlaps the CEL identifier "
                f"`{parameter}` (a type name); rename it",
                field="caveat",
                value=name,
            )
        if parameter in seen:
            raise CaveatError(
                f"caveat `{echo(name)}` declares parameter `{echo(parameter)}` more than once",
                field="caveat",
                value=name,
            )
        seen.add(parameter)
        try:
            kind = parse_caveat_type(type_text)
        except CaveatError as error:
            raise CaveatError(
                f"caveat `{echo(name)}` parameter `{echo(parameter)}`: {error.message}",
                field="caveat",
                value=name,
            ) from error
        typed.append((parameter, kind))
    return tuple(typed)


def canonical_caveat_type_text(caveat_type: CaveatType) -> str:
    """The spelling the schema printer writes: `int`, `list<string>`, `map<list<int>>`."""
    if not caveat_type.args:
        return caveat_type.name
    inner = ", ".join(canonical_caveat_type_text(arg) for arg in caveat_type.args)
    return f"{caveat_type.name}<{inner}>"


def parse_caveat_type(text: str) -> CaveatType:
    """Parse a type as written in a caveat signature; whitespace around `<` `>` is allowed."""
    tokens = _tokenize(text)
    parsed, position = _parse(text, tokens, 0)
    if position != len(tokens):
        raise CaveatError(f"invalid caveat parameter type `{echo(text)}`", field="type", value=text)
    return parsed


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group(1) or match.group(2)
        if token is not None and not token.isspace():
            tokens.append(token)
    return tokens


def _parse(text: str, tokens: list[str], position: int) -> tuple[CaveatType, int]:
    if position >= len(tokens):
        raise CaveatError(f"invalid caveat parameter type `{echo(text)}`", field="type", value=text)
    name = tokens[position]
    position += 1
    has_args = position < len(tokens) and tokens[position] == "<"
    if name in SCALAR_TYPE_NAMES:
        if has_args:
            raise CaveatError(
                f"caveat parameter type `{echo(name)}` takes no type argument, in `{echo(text)}`",
                field="type",
                value=text,
            )
        return CaveatType(name), position
    if name in GENERIC_TYPE_NAMES:
        if not has_args:
            raise CaveatError(
                f"caveat parameter type `{echo(name)}` needs one type argument, as in `{name}<string>`",
                field="type",
                value=text,
            )
        element, position = _parse(text, tokens, position + 1)
        if position >= len(tokens) or tokens[position] != ">":
            raise CaveatError(
                f"caveat parameter type `{echo(name)}` takes exactly one type argument, in `{echo(text)}`",
                field="type",
                value=text,
            )
        return CaveatType(name, (element,)), position + 1
    where = "" if name == text.strip() else f" in `{text}`"
    raise CaveatError(
        f"unknown caveat parameter type `{echo(name)}`{where}", field="type", value=text
    )
