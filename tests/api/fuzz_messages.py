"""Hypothesis strategies for request bodies of any RPC, built from its descriptor.

A body is a random message of the method's input type (any subset of fields, values that
are sometimes sensible and often hostile: huge strings, trailing newlines, NaN and
infinities, out-of-range timestamps, deeply nested contexts), serialized and then, some of
the time, damaged on the wire (invalid UTF-8 in a string field, truncation, flipped
bytes) or replaced by random bytes. Nothing here knows a particular RPC: a new field or
method is covered as soon as it is in the descriptor.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import descriptor as d
from google.protobuf import message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st

__all__ = ["bodies"]

F = d.FieldDescriptor

# Words that often make a field valid, so that requests reach past the first check.
_WORDS = [
    "acme",
    "globex",
    "document",
    "user",
    "group",
    "folder",
    "view",
    "viewer",
    "member",
    "banned",
    "alice",
    "x",
    "*",
    "...",
    "viewer_role",
    "tenant_admin",
]

_HOSTILE_TEXT = st.one_of(
    st.integers(1000, 20_000).map(lambda n: "x" * n),
    st.sampled_from(_WORDS).map(lambda w: w + "\n"),
    st.sampled_from([" ", "\t\n", "", "\x00", "doc 1", "a" * 65, "é" * 300, "\u202e"]),
)

_TEXT = st.one_of(st.sampled_from(_WORDS), st.text(max_size=20), _HOSTILE_TEXT)

_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}

_NUMBERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 5).map(float),
)

_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["n", "ip", "list", "x"]), inner, max_size=3),
    ),
    max_leaves=8,
)


def _deep_dict(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


_STRUCT = st.one_of(
    st.dictionaries(st.sampled_from(["n", "ip", "now", "x"]), _JSON, max_size=4),
    st.integers(20, 60).map(_deep_dict),
)


def _scalar(field: d.FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == F.TYPE_STRING:
        return _TEXT
    if field.type == F.TYPE_BYTES:
        return st.binary(max_size=40)
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return _NUMBERS if field.type == F.TYPE_DOUBLE else st.floats(width=32)
    if field.type == F.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 50))
    low, high = _INT_RANGES[field.type]
    return st.one_of(st.integers(0, 5), st.integers(low, high), st.sampled_from([low, high]))


def _fill(draw: st.DrawFn, msg: Message, depth: int) -> None:
    descriptor = msg.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Struct":
        msg.update(draw(_STRUCT))  # type: ignore[attr-defined]
        return
    if descriptor.full_name == "google.protobuf.Timestamp":
        msg.seconds = draw(  # type: ignore[attr-defined]
            st.one_of(st.integers(0, 2**32), st.integers(-(2**63), 2**63 - 1))
        )
        msg.nanos = draw(st.one_of(st.just(0), st.integers(-(2**31), 2**31 - 1)))  # type: ignore[attr-defined]
        return
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        repeated = field.is_repeated
        count = draw(st.integers(1, 3)) if repeated else 1
        if field.type == F.TYPE_MESSAGE:
            if depth <= 0:
                continue
            for _ in range(count):
                child = getattr(msg, field.name).add() if repeated else getattr(msg, field.name)
                _fill(draw, child, depth - 1)
                if not repeated:
                    child.SetInParent()
            continue
        values = [draw(_scalar(field)) for _ in range(count)]
        try:
            if repeated:
                getattr(msg, field.name).extend(values)
            else:
                setattr(msg, field.name, values[0])
        except (ValueError, TypeError):
            pass  # a value python's protobuf refuses to hold; the wire damage covers it


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string_field_numbers(descriptor: d.Descriptor) -> list[int]:
    return [f.number for f in descriptor.fields if f.type == F.TYPE_STRING] or [1]


def _damage(draw: st.DrawFn, body: bytes, descriptor: d.Descriptor) -> bytes:
    how = draw(st.sampled_from(["none", "none", "utf8", "truncate", "flip", "random"]))
    if how == "utf8":
        number = draw(st.sampled_from(_string_field_numbers(descriptor)))
        bad = draw(st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"a\x80"]))
        return body + _varint(number << 3 | 2) + _varint(len(bad)) + bad
    if how == "truncate" and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    if how == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]
    if how == "random":
        return draw(st.binary(min_size=1, max_size=64))
    return body


@st.composite
def bodies(draw: st.DrawFn, descriptor: d.Descriptor) -> bytes:
    """A request body for a method taking `descriptor`, often broken on purpose."""
    msg = message_factory.GetMessageClass(descriptor)()
    _fill(draw, msg, depth=4)
    return _damage(draw, msg.SerializeToString(), descriptor)
