"""The PATCH forms identity providers send that RFC 7644 does not define.

Entra ID removes group members with `{"op": "Remove", "path": "members", "value":
[{"value": "<id>"}]}`; RFC 7644 §3.5.2.2 selects what to remove with a filter in the
path instead, and scim2-server refuses a remove that carries a value. Such an operation
is rewritten into one standard remove per listed value
(`members[value eq "<id>"]`) before scim2-server reads the body. Anything else is left
byte for byte as it came, so scim2-server reports its errors.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["standard_patch"]


def _removals(operation: Any) -> list[dict[str, Any]] | None:
    """The standard removes for an Entra-style remove, or None if it is not one."""
    if not isinstance(operation, dict) or str(operation.get("op", "")).lower() != "remove":
        return None
    path, value = operation.get("path"), operation.get("value")
    if not isinstance(path, str) or "[" in path or not isinstance(value, list) or not value:
        return None
    if not all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in value):
        return None
    return [{"op": "remove", "path": f"{path}[value eq {json.dumps(v['value'])}]"} for v in value]


def standard_patch(body: bytes) -> bytes:
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    operations = message.get("Operations") if isinstance(message, dict) else None
    if not isinstance(operations, list):
        return body
    rewritten: list[Any] = []
    changed = False
    for operation in operations:
        removals = _removals(operation)
        changed |= removals is not None
        rewritten.extend(removals if removals is not None else [operation])
    if not changed:
        return body
    return json.dumps({**message, "Operations": rewritten}).encode()
