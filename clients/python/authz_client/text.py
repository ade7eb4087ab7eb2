"""Text forms of references and relationships, to and from their protobuf messages.

    document:readme                               an object
    user:alice   group:eng#member   user:*        subjects (object, subject set, wildcard)
    document:readme#viewer@user:alice             a relationship
    document:vpn#viewer@user:dave[ip_allowlist:{"cidr":"10.0.0.0/8"}]      caveated
    document:tmp#viewer@user:erin[expiration:2030-01-01T00:00:00Z]         expiring

The parser checks the shape only (separators, brackets, JSON, timestamps). Names and ids
are validated by the server, which answers INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2

from authz_client._stubs import core_pb2
from authz_client.errors import TextFormError

__all__ = [
    "format_object",
    "format_relationship",
    "format_subject",
    "parse_object",
    "parse_relationship",
    "parse_subject",
    "to_struct",
]

_NAME = r"[^:#@\[\]\s]+"
_ID = r"[^#@\[\]\s]+"
_OBJECT = re.compile(rf"(?P<type>{_NAME}):(?P<id>{_ID})")
_SUBJECT = re.compile(rf"(?P<type>{_NAME}):(?P<id>{_ID})(?:#(?P<relation>[^@\[\]\s]+))?")
_RELATIONSHIP = re.compile(
    rf"(?P<resource>{_NAME}:{_ID})#(?P<relation>[^@\s]+)@(?P<subject>[^\[\s]+)(?P<tail>.*)"
)
_DECODER = json.JSONDecoder()


def parse_object(text: str) -> core_pb2.ObjectReference:
    """`type:id` as an ObjectReference."""
    match = _OBJECT.fullmatch(text.strip())
    if match is None:
        raise TextFormError(f"`{text}` is not of the form `type:id`")
    return core_pb2.ObjectReference(object_type=match["type"], object_id=match["id"])


def parse_subject(text: str) -> core_pb2.SubjectReference:
    """`type:id`, `type:id#relation` or `type:*` as a SubjectReference."""
    match = _SUBJECT.fullmatch(text.strip())
    if match is None:
        raise TextFormError(f"`{text}` is not of the form `type:id[#relation]`")
    relation = match["relation"] or ""
    # `#...` is SpiceDB's spelling of "the object itself".
    return core_pb2.SubjectReference(
        object=core_pb2.ObjectReference(object_type=match["type"], object_id=match["id"]),
        relation="" if relation == "..." else relation,
    )


def parse_relationship(text: str) -> core_pb2.Relationship:
    """`type:id#relation@subject[caveat[:{json}]][expiration:RFC3339]` as a Relationship."""
    match = _RELATIONSHIP.fullmatch(text.strip())
    if match is None:
        raise TextFormError(f"`{text}` is not of the form `type:id#relation@type:id[#relation]`")
    relationship = core_pb2.Relationship(
        resource=parse_object(match["resource"]),
        relation=match["relation"],
        subject=parse_subject(match["subject"]),
    )
    for name, argument in _brackets(match["tail"], text):
        if name == "expiration":
            relationship.expires_at.FromDatetime(_timestamp(argument, text))
            continue
        relationship.caveat.name = name
        if argument:
            relationship.caveat.context.CopyFrom(to_struct(_json_object(argument, text)))
    return relationship


def format_object(ref: core_pb2.ObjectReference) -> str:
    return f"{ref.object_type}:{ref.object_id}"


def format_subject(ref: core_pb2.SubjectReference) -> str:
    text = format_object(ref.object)
    return f"{text}#{ref.relation}" if ref.relation else text


def format_relationship(rel: core_pb2.Relationship) -> str:
    """The text form; caveat context as compact JSON with sorted keys."""
    text = f"{format_object(rel.resource)}#{rel.relation}@{format_subject(rel.subject)}"
    if rel.HasField("caveat"):
        text += f"[{rel.caveat.name}"
        if rel.caveat.context.fields:
            context = json_format.MessageToDict(rel.caveat.context)
            text += ":" + json.dumps(context, sort_keys=True, separators=(",", ":"))
        text += "]"
    if rel.HasField("expires_at"):
        when = rel.expires_at.ToDatetime(tzinfo=UTC)
        text += f"[expiration:{when.isoformat().replace('+00:00', 'Z')}]"
    return text


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    """A JSON-like dict as a google.protobuf.Struct (numbers become doubles)."""
    struct = struct_pb2.Struct()
    try:
        struct.update(values)
    except (TypeError, ValueError) as exc:
        raise TextFormError(f"context is not JSON-like: {exc}") from None
    return struct


def _brackets(tail: str, text: str) -> list[tuple[str, str]]:
    """Split `[a][b:{...}][expiration:...]` into (name, argument) pairs."""
    groups: list[tuple[str, str]] = []
    pos = 0
    while pos < len(tail):
        if tail[pos] != "[":
            raise TextFormError(f"unexpected `{tail[pos:]}` after the subject in `{text}`")
        colon, close = tail.find(":", pos), tail.find("]", pos)
        if close < 0:
            raise TextFormError(f"unclosed `[` in `{text}`")
        if colon < 0 or colon > close:
            groups.append((tail[pos + 1 : close], ""))
            pos = close + 1
            continue
        name = tail[pos + 1 : colon]
        if tail.startswith("{", colon + 1):
            # The JSON object may itself contain `]`: let the decoder find its end.
            try:
                _, end = _DECODER.raw_decode(tail, colon + 1)
            except json.JSONDecodeError as exc:
                raise TextFormError(f"caveat context in `{text}` is not JSON: {exc.msg}") from None
        else:
            end = close
        if not tail.startswith("]", end):
            raise TextFormError(f"unclosed `[` in `{text}`")
        groups.append((name, tail[colon + 1 : end]))
        pos = end + 1
    return groups


def _json_object(argument: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(argument)
    except json.JSONDecodeError as exc:
        raise TextFormError(f"caveat context in `{text}` is not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise TextFormError(f"caveat context in `{text}` must be a JSON object")
    return value


def _timestamp(argument: str, text: str) -> datetime:
    try:
        when = datetime.fromisoformat(argument.replace("Z", "+00:00"))
    except ValueError:
        raise TextFormError(f"expiration `{argument}` in `{text}` is not RFC 3339") from None
    if when.tzinfo is None:
        raise TextFormError(f"expiration `{argument}` in `{text}` needs a time zone")
    return when
