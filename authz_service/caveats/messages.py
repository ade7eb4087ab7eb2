"""Turning the CEL library's exceptions into short, lowercase messages.

The library's messages carry advice for interactive users ("Check that the variable is
defined...") and source echoes; callers of the service need only the first clause.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from authz_service.errors import echo

__all__ = ["cel_type_name", "describe_cel_error", "describe_syntax_error", "undefined_name"]

_UNDEFINED = re.compile(r"Undefined variable or function: '([^']*)'")
_PYTHON_FUNCTION = re.compile(
    r"Function '([^']+)' error: Python function call failed: \w+: (.*?)"
    r"(?:\. Check function arguments and their types\.)?$",
    re.DOTALL,
)
_SYNTAX = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
# The parser's own values, such as `OtherError(ParseError { source: None, pos: (96, -1),
# msg: "Recursion limit of 96 exceeded", ... })`: internals, never shown as they are.
_LIBRARY_VALUE = re.compile(r"[A-Z]\w*(?:\(|\s*\{)")
_RECURSION = re.compile(r"Recursion limit of \d+ exceeded")
# ANTLR quotes the input it stopped at (`mismatched input 'x' expecting {...}`, `token
# recognition error at: 'x'`), which may be a whole string literal: shown through echo.
_QUOTED = re.compile(
    r"(?P<head>.*?(?:input|at:?) )'(?P<input>.*?)'(?P<tail>(?: expecting .*)?)", re.DOTALL
)
_ADVICE = re.compile(r"\.\s+(?:Check|CEL does not|Convert|Common causes)\b.*$", re.DOTALL)


def undefined_name(error: BaseException) -> str | None:
    """The identifier the library could not resolve, when that is what `error` says."""
    match = _UNDEFINED.match(str(error))
    return match.group(1) if match else None


def describe_cel_error(error: BaseException) -> str:
    """A one-line lowercase description of an evaluation failure."""
    if isinstance(error, KeyError) and error.args:
        return f"no such key `{error.args[0]}`"
    text = str(error).strip()
    name = undefined_name(error)
    if name is not None:
        return f"undefined variable or function `{name}`"
    match = _PYTHON_FUNCTION.match(text)
    if match:
        return f"{match.group(1)}: {_lowercase_first(match.group(2))}"
    text = _ADVICE.sub("", text.splitlines()[0] if text else type(error).__name__)
    text = text.removesuffix(" in CEL expression")
    if text.startswith("No such overload"):
        # The library says this for ordering a NaN too (`used / quota < 0.9` on zeros),
        # which no type mismatch explains: say so, as SpiceDB does.
        text += " (NaN, as from 0.0 / 0.0, cannot be ordered)"
    return _lowercase_first(text.rstrip("."))


def describe_syntax_error(error: BaseException) -> tuple[str, int, int]:
    """(message, line, column) of the most useful error in a failed parse.

    The parser may report an internal "incomplete context" error before the real syntax
    error; the first `Syntax error:` entry is the one a schema author can act on.
    """
    found = [match.groups() for match in _SYNTAX.finditer(str(error))]
    if not found:
        return "not a valid expression", 0, 0  # the text would quote the whole expression
    chosen = next((entry for entry in found if entry[2].startswith("Syntax error:")), found[0])
    line, column, message = chosen
    return _plain(message.removeprefix("Syntax error:").strip()), int(line), int(column)


def _plain(message: str) -> str:
    """The parser's reason in plain words, quoting the input through `echo`."""
    if _RECURSION.search(message):
        return "nesting too deep"
    if _LIBRARY_VALUE.match(message):
        return "not a valid expression"
    quoted = _QUOTED.fullmatch(message)
    if quoted:
        message = f"{quoted['head']}'{echo(quoted['input'])}'{quoted['tail']}"
    return _lowercase_first(message)


def cel_type_name(value: object) -> str:
    """The CEL name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, timedelta):
        return "duration"
    return type(value).__name__


def _lowercase_first(text: str) -> str:
    # Leave acronyms and identifiers ("CIDR", "ValueError") alone; lower only a word
    # whose second letter is lowercase.
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text
