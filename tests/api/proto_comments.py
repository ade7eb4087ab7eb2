"""The comment above an element of a .proto file, for tests that hold the server to what
its API reference (the proto comments, which buf lint requires) says."""

from __future__ import annotations

import re
from pathlib import Path

PROTO = Path(__file__).resolve().parents[2] / "proto" / "authz" / "v1"

_OPEN = re.compile(r"^(?:message|enum|service|oneof)\s+(\w+)\s*\{")


def comment(file: str, element: str) -> str:
    """The leading comment of `element` in `file` (say `permissions.proto`), its lines joined
    by spaces: `Message` for a top-level message, enum or service, `Message.field` for a
    field or rpc of one (`Explanation`, `CheckResponse.explanation`, `Service.Method`)."""
    outer, _, member = element.partition(".")
    pending: list[str] = []
    stack: list[str] = []
    for raw in (PROTO / file).read_text().splitlines():
        line = raw.strip()
        if line.startswith("//"):
            pending.append(line.removeprefix("//").strip())
            continue
        opened = _OPEN.match(line)
        if opened is not None:
            if not member and not stack and opened.group(1) == outer:
                return " ".join(pending)
            stack.append(opened.group(1))
        elif line == "}":
            stack.pop()
        elif member and stack[:1] == [outer] and _declares(line, member):
            return " ".join(pending)  # in `outer` or a oneof of it
        pending = []
    raise LookupError(f"{element} not found in {file}")


def _declares(line: str, name: str) -> bool:
    """A field (`Type name = N;`) or an rpc (`rpc Name(...)`) called `name`."""
    return re.search(rf"(?:\s{name}\s*=\s*\d+\s*;|^rpc\s+{name}\s*\()", line) is not None
