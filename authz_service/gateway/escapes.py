"""Percent-escapes that would let the gateway judge one path while the upstream serves
another.

Routes match the path as sent, without decoding it (routes.py); the upstream decodes it
before routing it. An escape that decodes to something meaningful in a path therefore
changes what is served without changing what is judged:

- `%2F`, `%5C`: `/v1/docs%2Froadmap` matches no route (under `unmatched: allow` it
  passes unchecked), and a WSGI server serves it as /v1/docs/roadmap. Some servers take
  `\\` for `/`, so a bare backslash is refused too. Envoy's `normalize_path` leaves
  these alone.
- an escaped letter, digit or `-._~`: `%2E%2E` is `..` and `/v1/%64ocs` is /v1/docs to
  the upstream. Envoy's `normalize_path` decodes them (and resolves the dot segments),
  so one arriving here means that the path was not normalised.
- an escaped control character: a server written in C stops reading a path at `%00`,
  and Python's `re` matches a `$` before a trailing `%0A`.

Such a path is refused before any route is looked at, so neither `unmatched: allow` nor
a public route lets it through. The query string is not routed, so its escapes stay.
"""

from __future__ import annotations

import re
import string

__all__ = ["ambiguous_escape"]

_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")  # RFC 3986 2.3

SLASH = "path has an encoded slash or a backslash"
UNRESERVED = "path has an encoded letter, digit or `-._~`"
CONTROL = "path has an encoded control character"


def ambiguous_escape(target: str) -> str | None:
    """Why the path of request target `target` may be served as another path than the one
    the gateway would judge; None if it cannot."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if "\\" in path:
        return SLASH
    for match in _ESCAPE_RE.finditer(path):
        char = chr(int(match[1], 16))
        if char in "/\\":
            return SLASH
        if char < " " or char == "\x7f":
            return CONTROL
        if char in _UNRESERVED:
            return UNRESERVED
    return None
