"""Turning the CEL library's exceptions into short, lowercase messages.

The library's messages carry advice for interactive users ("Check that the variable is
defined...") and source echoes; callers of the service need only the first clause.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

__all__ = ["cel_type_name", "describe_cel_error", "describe_syntax_error", "undefined_name"]

_UNDEFINED = re.compile(r"Undefined variable or function: '([^']*)'")
_PYTHON_FUNCTION = re.compile(
    r"Function '([^']+)' error: Python function call failed: \w+: (.*?)"
    r"(?:\. Check function arguments and their types\.)?$",
    re.DOTALL,
)
_SYNTAX = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
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
    return _lowercase_first(text.rstrip("."))


def describe_syntax_error(error: BaseException) -> tuple[str, int, int]:
    """(message, line, column) of the most useful error in a failed parse.

    The parser may report an internal "incomplete context" error before the real syntax
    error; the first `Syntax error:` entry is the one a schema author can act on.
    """
    found = [match.groups() for match in _SYNTAX.finditer(str(error))]
    if not found:
        return _lowercase_first(str(error).splitlines()[0] if str(error) else "invalid"), 0, 0
    chosen = next((entry for entry in found if entry[2].startswith("Syntax error:")), found[0])
    line, column, message = chosen
    message = message.removeprefix("Syntax error:").strip()
    return _lowercase_first(message), int(line), int(column)


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
