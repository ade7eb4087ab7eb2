r"""Lone surrogates in parsed text.

JSON's escape `\ud800`, and YAML's in a double-quoted string, may name one half of a
UTF-16 surrogate pair, which is no character. Python's parsers keep it in a `str` that
no UTF-8 encoder takes (a web page, a gRPC string, PostgreSQL), so the first write of
it fails far from where it came in. Text holding one is refused where it is parsed
instead, naming the escape: YAML in unique_yaml.py, JSON by each caller of `json.loads`
that reads a caller's text (caveat contexts, the console's forms, page cursors).
"""

from __future__ import annotations

import re

__all__ = ["lone_surrogate"]

# A parsed pair is one code point past U+FFFF: any code point left in this range is alone.
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: object, what: str) -> str | None:
    """Why `value` (a string, or the lists and mappings JSON and YAML make, keys
    included) cannot be text, `what` naming it; None if it holds no lone surrogate."""
    pending = [value]
    while pending:  # a loop, not recursion: the value may be nested as deep as it parsed
        item = pending.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                escape = f"\\u{ord(found.group()):04x}"
                pair = "a lone surrogate (half of a UTF-16 pair), not a character"
                return f"{what} holds `{escape}`, {pair}"
        elif isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
    return None
