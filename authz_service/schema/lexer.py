"""Tokens of the schema language, produced lazily so the parser can switch modes.

The parser pulls one token at a time. For a caveat body it asks for the raw text up to the
matching `}` instead (`raw_block`), because CEL has its own lexical rules (strings, comments)
and must reach the caveat compiler verbatim.

Words are lexed as one `NAME` token including `/` namespace separators (`org/team/user`);
whether a word is a keyword depends on where the parser is, so keywords stay usable as names
wherever that is unambiguous. `/** doc */` comments ride on the next token as `doc`.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Literal

from authz_service.errors import SchemaError, echo
from authz_service.schema.ast import Span

__all__ = ["Lexer", "Token", "normalize_cel"]

TokenKind = Literal["name", "punct", "eof"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*")
_PUNCT = ("->", "{", "}", "(", ")", ":", "|", "#", "*", ",", ".", "=", "+", "&", "-", "<", ">")
_STRING_PREFIX = re.compile(r"(?<![A-Za-z0-9_])[rRbB]{1,2}$")


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    span: Span
    doc: str = ""

    def describe(self) -> str:
        return "end of input" if self.kind == "eof" else f"`{self.text}`"


class Lexer:
    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._line = 1
        self._line_start = 0

    def _span(self, pos: int | None = None) -> Span:
        pos = self._pos if pos is None else pos
        return Span(self._line, pos - self._line_start + 1)

    def _advance_to(self, end: int) -> None:
        """Move the cursor to `end`, keeping the line bookkeeping right."""
        text = self._text
        newline = text.rfind("\n", self._pos, end)
        if newline >= 0:
            self._line += text.count("\n", self._pos, end)
            self._line_start = newline + 1
        self._pos = end

    def next_token(self) -> Token:
        docs: list[str] = []
        text = self._text
        while True:
            while self._pos < len(text) and text[self._pos] in " \t\r\n\f\v":
                self._advance_to(self._pos + 1)
            if text.startswith("//", self._pos):
                end = text.find("\n", self._pos)
                self._advance_to(len(text) if end < 0 else end)
            elif text.startswith("/*", self._pos):
                start = self._span()
                end = text.find("*/", self._pos + 2)
                if end < 0:
                    raise SchemaError("unterminated comment", line=start.line, column=start.column)
                body = text[self._pos : end]
                if body.startswith("/**") and len(body) > 3:
                    docs.append(_doc_text(body[3:]))
                self._advance_to(end + 2)
            else:
                break
        doc = "\n".join(d for d in docs if d)
        span = self._span()
        if self._pos >= len(text):
            return Token("eof", "", span, doc)
        match = _NAME.match(text, self._pos)
        if match:
            self._advance_to(match.end())
            return Token("name", match.group(), span, doc)
        for punct in _PUNCT:
            if text.startswith(punct, self._pos):
                self._advance_to(self._pos + len(punct))
                return Token("punct", punct, span, doc)
        raise SchemaError(
            f"unexpected character `{echo(text[self._pos])}`", line=span.line, column=span.column
        )

    def raw_block(self, open_span: Span) -> str:
        """The text after an already consumed `{` up to its matching `}` (consumed too).

        Braces inside CEL string literals and `//` comments do not count.
        """
        text = self._text
        start = pos = self._pos
        depth = 1
        while pos < len(text):
            char = text[pos]
            if char in "'\"":
                pos = _skip_string(text, pos, open_span)
                continue
            if text.startswith("//", pos):
                end = text.find("\n", pos)
                pos = len(text) if end < 0 else end
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    self._advance_to(pos + 1)
                    return text[start:pos]
            pos += 1
        raise SchemaError(
            "unterminated caveat expression: missing `}`",
            line=open_span.line,
            column=open_span.column,
        )


def _skip_string(text: str, pos: int, open_span: Span) -> int:
    """Index just past the CEL string literal starting at `pos` (a quote character)."""
    prefix = _STRING_PREFIX.search(text, max(0, pos - 2), pos)
    raw = prefix is not None and "r" in prefix.group().lower()
    quote = text[pos] * 3 if text.startswith(text[pos] * 3, pos) else text[pos]
    pos += len(quote)
    while pos < len(text):
        if text.startswith(quote, pos):
            return pos + len(quote)
        if text[pos] == "\\" and not raw:
            pos += 2
            continue
        if text[pos] == "\n" and len(quote) == 1:
            break
        pos += 1
    raise SchemaError(
        "unterminated string in caveat expression", line=open_span.line, column=open_span.column
    )


def _doc_text(body: str) -> str:
    """The text of a `/** ... */` comment without the leading `*` decoration of its lines."""
    lines = [line.strip() for line in body.splitlines()]
    lines = [line[1:].strip() if line.startswith("*") else line for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def normalize_cel(body: str) -> str:
    """Canonical CEL text: outer blank lines, trailing spaces and common indentation removed.

    Text with triple-quoted strings is only stripped at its ends, since whitespace inside
    such a string is part of its value.
    """
    if "'''" in body or '"""' in body:
        return body.strip()
    lines = [line.rstrip() for line in body.split("\n")]
    first = lines[0].strip()
    rest = textwrap.dedent("\n".join(lines[1:])) if len(lines) > 1 else ""
    if not first:
        return rest.strip("\n")
    return f"{first}\n{rest}".rstrip("\n") if rest.strip() else first
