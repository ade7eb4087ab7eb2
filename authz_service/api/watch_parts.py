"""Watch responses of bounded size.

A revision can hold any number of changes (a bulk load, a delete by filter): sent as one
response, 200,100 changes made a message no client with gRPC's default 4 MiB receive
limit can read, and building it held the event loop for seconds. A revision's changes
are sent in parts of at most MESSAGE_CHANGES changes and MESSAGE_BYTES bytes instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from authz_service.api.gen.authz.v1 import relationships_pb2

__all__ = ["MESSAGE_BYTES", "MESSAGE_CHANGES", "parts"]

MESSAGE_CHANGES = 1000
MESSAGE_BYTES = 1 << 20  # a quarter of the 4 MiB a gRPC client accepts by default
# Room left for the rest of a response (its token and flag), and the most one change
# adds around its own encoding (a field tag and a length of up to five bytes).
_RESPONSE_ROOM = 256
_PER_CHANGE = 6

Change = relationships_pb2.RelationshipChange


def parts(changes: Sequence[Change]) -> Iterator[list[Change]]:
    """`changes` in order, cut into parts that each fit one response. A change larger
    than a response on its own (a caveat context past 1 MiB, which only a raised
    AUTHZ_MAX_CONTEXT_BYTES admits) is a part by itself."""
    part: list[Change] = []
    size = _RESPONSE_ROOM
    for change in changes:
        cost = change.ByteSize() + _PER_CHANGE
        if part and (len(part) == MESSAGE_CHANGES or size + cost > MESSAGE_BYTES):
            yield part
            part, size = [], _RESPONSE_ROOM
        part.append(change)
        size += cost
    if part:
        yield part
