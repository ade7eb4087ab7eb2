"""No string of a request may hold a NUL character (U+0000).

PostgreSQL's `text` and `jsonb` cannot hold one. A NUL in a reason, key, id, filter or
stored caveat context would otherwise reach the database and fail there, where nothing
knows which field it came from. `refuse_nul` finds the first such string in a decoded
request (the keys and string values of a `google.protobuf.Struct` included) and raises
InvalidArgument naming its path, as `context.limits.n` and `items[3].reason` are named
elsewhere.

It costs one serialization when there is none: a NUL in a string is a zero byte in the
encoding, so a request whose bytes hold no zero byte (most of them) is not walked. Check
and CheckBulk skip it (`calls.hot_unary_rpc`): they store nothing, their ids and names
are matched against patterns, and their context and reason reach only the decision log.
"""

from __future__ import annotations

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from authz_service.errors import InvalidArgument, echo

__all__ = ["refuse_nul"]

_RULE = "text may not contain a NUL character (U+0000)"


def refuse_nul(request: Message) -> None:
    """Raise InvalidArgument naming the first string of `request` that holds a NUL."""
    if b"\x00" in request.SerializeToString():
        _message(request, "")


def _shown(text: str) -> str:
    return text.replace("\x00", "\\x00")


def _text(text: str, path: str) -> None:
    if "\x00" in text:
        raise InvalidArgument(
            f"`{echo(path)}` is `{echo(_shown(text))}`: {_RULE}", field=path, value=text
        )


def _message(msg: Message, prefix: str) -> None:
    if isinstance(msg, struct_pb2.Struct):
        _struct(msg, prefix.removesuffix("."))
        return
    for field, value in msg.ListFields():
        path = prefix + field.name
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                for i, text in enumerate(value):
                    _text(text, f"{path}[{i}]")
            else:
                _text(value, path)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                for i, item in enumerate(value):
                    _message(item, f"{path}[{i}].")
            else:
                _message(value, f"{path}.")


def _struct(msg: struct_pb2.Struct, path: str) -> None:
    for key, value in msg.fields.items():
        where = f"{path}.{_shown(key)}"
        if "\x00" in key:
            raise InvalidArgument(
                f"`{echo(path)}` has the key `{echo(_shown(key))}`: {_RULE}", field=where, value=key
            )
        _value(value, where)


def _value(value: struct_pb2.Value, path: str) -> None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        _text(value.string_value, path)
    elif kind == "struct_value":
        _struct(value.struct_value, path)
    elif kind == "list_value":
        for i, item in enumerate(value.list_value.values):
            _value(item, f"{path}[{i}]")
