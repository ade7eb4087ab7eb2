"""Splitting a CEL expression at its top-level logical operators.

The CEL library exposes no syntax tree, so partial evaluation needs to find `&&`, `||`,
`!( )` and `? :` itself. Only that outer layer is parsed here; every other sub-expression
(comparisons, calls, comprehensions) stays opaque text that the library compiles as a
leaf. The scanner knows just enough lexical structure to not be fooled: string and
bytes literals in all quote styles (raw or not), `//` comments and bracket nesting.

Only the library's parse is authoritative: the caller compiles every leaf and falls back
to treating the whole expression as one leaf if any piece does not compile.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["SplitError", "Token", "comprehension_variables", "split_logical", "tokenize"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING_PREFIXES = frozenset({"r", "b", "rb", "br"})
_OPERATORS = frozenset({"&&", "||", "!=", "==", "<=", ">="})
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})

N = TypeVar("N")


class SplitError(ValueError):
    """The text is not shaped as expected; the caller falls back to one leaf."""


@dataclass(frozen=True, slots=True)
class Token:
    """`kind` is "ident", "string", or the punctuation or operator text itself."""

    kind: str
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position, length = 0, len(text)
    while position < length:
        char = text[position]
        if char.isspace():
            position += 1
        elif text.startswith("//", position):
            newline = text.find("\n", position)
            position = length if newline < 0 else newline + 1
        elif (word := _IDENTIFIER.match(text, position)) is not None:
            end = word.end()
            if end < length and text[end] in "'\"" and word.group().lower() in _STRING_PREFIXES:
                end = _string_end(text, end, raw="r" in word.group().lower())
                tokens.append(Token("string", text[position:end], position, end))
            else:
                tokens.append(Token("ident", word.group(), position, end))
            position = end
        elif char in "'\"":
            end = _string_end(text, position, raw=False)
            tokens.append(Token("string", text[position:end], position, end))
            position = end
        elif text[position : position + 2] in _OPERATORS:
            pair = text[position : position + 2]
            tokens.append(Token(pair, pair, position, position + 2))
            position += 2
        else:
            tokens.append(Token(char, char, position, position + 1))
            position += 1
    return tokens


def _string_end(text: str, quote_at: int, *, raw: bool) -> int:
    quote = text[quote_at]
    delimiter = quote * 3 if text.startswith(quote * 3, quote_at) else quote
    position = quote_at + len(delimiter)
    while position < len(text):
        if not raw and text[position] == "\\":
            position += 2
        elif text.startswith(delimiter, position):
            return position + len(delimiter)
        else:
            position += 1
    raise SplitError("unterminated string literal")


def comprehension_variables(tokens: list[Token]) -> frozenset[str]:
    """Names bound by macros, as `i` in `list.all(i, i > 0)`, and used only in their scope.

    The library lists such names among an expression's variables; they are not
    parameters. A name also used outside its macro is left out, so it is reported.
    """
    partner = _match_brackets(tokens)
    scopes: dict[str, list[tuple[int, int]]] = {}
    for index in range(len(tokens) - 4):
        dot, macro, paren, name, comma = tokens[index : index + 5]
        if (
            dot.kind == "."
            and macro.kind == "ident"
            and macro.text in _MACROS
            and paren.kind == "("
            and name.kind == "ident"
            and comma.kind == ","
        ):
            scopes.setdefault(name.text, []).append((index + 2, partner[index + 2]))
    bound: set[str] = set()
    for variable, spans in scopes.items():
        uses = [
            index
            for index, token in enumerate(tokens)
            if token.kind == "ident"
            and token.text == variable
            and (index == 0 or tokens[index - 1].kind != ".")
        ]
        if all(any(lo < use < hi for lo, hi in spans) for use in uses):
            bound.add(variable)
    return frozenset(bound)


def split_logical(
    text: str,
    *,
    leaf: Callable[[str], N],
    negate: Callable[[N], N],
    conjoin: Callable[[tuple[N, ...]], N],
    disjoin: Callable[[tuple[N, ...]], N],
    choose: Callable[[N, N, N], N],
) -> N:
    """Build a tree with the given constructors; raises SplitError on unexpected shapes."""
    tokens = tokenize(text)
    partner = _match_brackets(tokens)

    def top_level(lo: int, hi: int, kind: str) -> list[int]:
        found: list[int] = []
        index = lo
        while index < hi:
            if tokens[index].kind in _OPENERS:
                index = partner[index] + 1
                continue
            if tokens[index].kind == kind:
                found.append(index)
            index += 1
        return found

    def pieces(lo: int, hi: int, cuts: list[int]) -> list[tuple[int, int]]:
        bounds = [lo - 1, *cuts, hi]
        return [(bounds[i] + 1, bounds[i + 1]) for i in range(len(bounds) - 1)]

    def expression(lo: int, hi: int) -> N:
        # CEL's grammar puts `?:` lowest and allows no bare ternary in the middle branch,
        # so the first top-level `?` and the first `:` after it delimit the branches.
        questions = top_level(lo, hi, "?")
        if not questions:
            return disjunction(lo, hi)
        colons = top_level(questions[0] + 1, hi, ":")
        if not colons:
            raise SplitError("`?` without `:`")
        return choose(
            disjunction(lo, questions[0]),
            disjunction(questions[0] + 1, colons[0]),
            expression(colons[0] + 1, hi),
        )

    def disjunction(lo: int, hi: int) -> N:
        parts = pieces(lo, hi, top_level(lo, hi, "||"))
        if len(parts) == 1:
            return conjunction(lo, hi)
        return disjoin(tuple(conjunction(a, b) for a, b in parts))

    def conjunction(lo: int, hi: int) -> N:
        parts = pieces(lo, hi, top_level(lo, hi, "&&"))
        if len(parts) == 1:
            return unary(lo, hi)
        return conjoin(tuple(unary(a, b) for a, b in parts))

    def is_negated_group(lo: int, hi: int) -> bool:
        # `!` binds tighter than comparisons (`!a == b` is `(!a) == b`), so only a `!`
        # applied to a whole parenthesised group is a logical node of its own.
        while lo < hi and tokens[lo].kind == "!":
            lo += 1
        return lo < hi and tokens[lo].kind == "(" and partner[lo] == hi - 1

    def unary(lo: int, hi: int) -> N:
        if lo >= hi:
            raise SplitError("empty operand")
        if tokens[lo].kind == "(" and partner[lo] == hi - 1:
            return expression(lo + 1, hi - 1)
        if tokens[lo].kind == "!" and is_negated_group(lo + 1, hi):
            return negate(unary(lo + 1, hi))
        return leaf(text[tokens[lo].start : tokens[hi - 1].end])

    return expression(0, len(tokens))


def _match_brackets(tokens: list[Token]) -> dict[int, int]:
    partner: dict[int, int] = {}
    stack: list[int] = []
    for index, token in enumerate(tokens):
        if token.kind in _OPENERS:
            stack.append(index)
        elif token.kind in (")", "]", "}"):
            if not stack or _OPENERS[tokens[stack[-1]].kind] != token.kind:
                raise SplitError("unbalanced brackets")
            partner[stack.pop()] = index
    if stack:
        raise SplitError("unbalanced brackets")
    return partner
