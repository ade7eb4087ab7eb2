"""Bounds on a request's caveat context, checked on the message before converting it.

A context is arbitrary JSON from the caller, and everything after this point (the
conversion, the canonical encoding that keys caches, caveat evaluation) costs time in
proportion to it: a 300,000-key context once took 7 s before any caveat ran. So its
encoded size, total number of keys, longest list and nesting depth are checked here,
on the protobuf message, in time bounded by the size limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import struct_pb2

from authz_service.errors import InvalidArgument

__all__ = ["ContextLimits", "check_context"]


@dataclass(frozen=True, slots=True)
class ContextLimits:
    """Defaults as in the configuration (AUTHZ_MAX_CONTEXT_*)."""

    max_bytes: int = 65_536
    max_depth: int = 8
    max_keys: int = 1_000
    max_list: int = 1_000


def check_context(msg: struct_pb2.Struct, field: str, limits: ContextLimits) -> None:
    """Raise InvalidArgument naming `field` and the limit the context exceeds."""
    size = msg.ByteSize()
    if size > limits.max_bytes:
        raise _over(field, f"is {size} bytes", "AUTHZ_MAX_CONTEXT_BYTES", limits.max_bytes)
    keys = 0
    stack: list[tuple[struct_pb2.Struct | struct_pb2.ListValue, int]] = [(msg, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limits.max_depth:
            raise _over(field, f"nests {depth} deep", "AUTHZ_MAX_CONTEXT_DEPTH", limits.max_depth)
        if isinstance(item, struct_pb2.Struct):
            keys += len(item.fields)
            if keys > limits.max_keys:
                raise _over(field, "has too many keys", "AUTHZ_MAX_CONTEXT_KEYS", limits.max_keys)
            values = list(item.fields.values())
        else:
            if len(item.values) > limits.max_list:
                raise _over(
                    field,
                    f"has a list of {len(item.values)} values",
                    "AUTHZ_MAX_CONTEXT_LIST",
                    limits.max_list,
                )
            values = list(item.values)
        for value in values:
            kind = value.WhichOneof("kind")
            if kind == "struct_value":
                stack.append((value.struct_value, depth + 1))
            elif kind == "list_value":
                stack.append((value.list_value, depth + 1))


def _over(field: str, what: str, name: str, limit: int) -> InvalidArgument:
    return InvalidArgument(f"`{field}` {what}, over the limit {name} = {limit}", field=field)
