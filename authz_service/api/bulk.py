"""CheckBulk's items in and answers out, with the work per call instead of per item.

A CheckBulk of cached pairs is mostly conversion: reading each item's fields from
protobuf (about 1,000 instructions per field read in upb), validating them, and building
a response entry of two nested messages per item. Here:

- `plain_items` reads each item's fields in one loop and validates whole columns at
  once in C (the distinct type names, every id of a column in one regular expression);
  a batch with any item outside the common form goes item by item as before, which
  names the field of the first error. `KnownItems` remembers the conversions of recent
  calls by the items' bytes.
- `response` writes the common entry (a decision with no missing context, no
  explanation, an id of the usual length) as bytes: a prefix per decision, taken from
  protobuf's own serialization of a sample entry, then the id. Every other entry is
  built as a message (`entry`) and serialized. The bytes are parsed once, in C, into the
  response message. tests/api/test_bulk_response.py holds the result equal to the
  message built entry by entry, over generated results.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, cast

from authz_service.api import convert
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from authz_service.api.status import status_proto
from authz_service.engine import CheckResult, Decision
from authz_service.errors import AuthzError
from authz_service.model import ID_RE, TYPE_RE
from authz_service.service.bulk_items import PlainItem

__all__ = ["KnownItems", "entry", "plain_items", "response"]

# The ids of a column joined by a character no valid id holds: every piece between two
# of them must be a valid id (the count of separators makes sure no id held one).
_SEPARATOR = "\n"
_ID_LIST_RE = re.compile(rf"(?:{ID_RE.pattern}{_SEPARATOR})*{ID_RE.pattern}")


def _valid_ids(ids: Sequence[str]) -> bool:
    joined = _SEPARATOR.join(ids)
    return joined.count(_SEPARATOR) == len(ids) - 1 and _ID_LIST_RE.fullmatch(joined) is not None


def plain_items(msgs: Sequence[Any]) -> list[PlainItem] | None:
    """Every item of a CheckBulk request as `convert.plain_check_item` would convert it,
    or None when one of them is not in that form or not valid (the caller then converts
    item by item). Only an object subject written without a relation (not `...`) is
    taken here. tests/api/test_bulk_items.py compares the two conversions."""
    rows: list[tuple[str, str, str, str, str, str, bool]] = []
    append = rows.append
    for msg in msgs:
        resource, subject = msg.resource, msg.subject
        obj = subject.object
        append(
            (
                resource.object_type,
                resource.object_id,
                msg.permission,
                obj.object_type,
                obj.object_id,
                subject.relation,
                msg.HasField("context"),
            )
        )
    if not rows:
        return []
    rtypes, rids, permissions, stypes, sids, relations, contexts = zip(*rows, strict=True)
    if any(contexts) or not all(permissions) or any(relations):
        return None
    if not all(map(TYPE_RE.fullmatch, {*rtypes, *stypes})):
        return None
    if not (_valid_ids(rids) and _valid_ids(sids)):
        return None
    return list(zip(rtypes, rids, permissions, stypes, sids, relations, strict=True))


class KnownItems:
    """`plain_items` that remembers the items of recent calls by their serialized bytes:
    a page checked again and again is read with one serialization and one dictionary
    lookup per item instead of ten field reads (each about 1,000 instructions in upb)
    and the checks. The bytes determine the message, and the conversion depends on the
    message alone, so a remembered answer is the one `plain_items` would give.

    At most `maxsize` items, oldest out first. An item costs its bytes, a tuple and its
    strings (shared with the decision cache's keys while both hold them): about 300
    bytes with ids of ten characters, up to about 4.5 KB with ids of 1,024 (18 MB for
    4,096 of those)."""

    def __init__(self, maxsize: int = 4096) -> None:
        # Not a plain dict: popping its first entry again and again leaves holes that
        # every `next(iter(...))` walks past (cache/lru.py).
        self._known: OrderedDict[bytes, PlainItem] = OrderedDict()
        self._maxsize = maxsize

    def convert(self, msgs: Sequence[Any]) -> list[PlainItem] | None:
        raws = [msg.SerializeToString() for msg in msgs]
        found = list(map(self._known.get, raws))
        if None not in found:
            return cast(list[PlainItem], found)
        unknown = [i for i, item in enumerate(found) if item is None]
        converted = plain_items([msgs[i] for i in unknown])
        if converted is None:
            return None
        known = self._known
        for i, item in zip(unknown, converted, strict=True):
            found[i] = item
            if len(known) >= self._maxsize:
                known.popitem(last=False)
            known[raws[i]] = item
        return cast(list[PlainItem], found)


Explain = Callable[[CheckResult], core_pb2.Explanation]


def entry(
    result: CheckResult | AuthzError, decision_id: str, explain: Explain
) -> permissions_pb2.CheckBulkResponseItem:
    """One answer of a CheckBulk as a message: the form every entry stands for."""
    item = permissions_pb2.CheckBulkResponseItem()
    if isinstance(result, AuthzError):
        item.error.CopyFrom(status_proto(result))
        return item
    item.result.decision = convert.decision_to_proto(result.decision)
    item.result.missing_context.extend(result.missing_context)
    item.result.decision_id = decision_id
    if result.explanation is not None:
        item.result.explanation.CopyFrom(explain(result))
    return item


# A ULID: what `new_decision_ids` makes, and what the prefixes below are measured with.
_ID_LENGTH = 26


def _entry_bytes(item: permissions_pb2.CheckBulkResponseItem) -> str:
    """A whole entry, as field 1 of CheckBulkResponse, in latin-1 (one character per
    byte), so that entries join with the ids without encoding each id."""
    return permissions_pb2.CheckBulkResponse(items=[item]).SerializeToString().decode("latin-1")


def _prefix(decision: Decision) -> str:
    """Everything of a plain entry that comes before its id."""
    sample = "0" * _ID_LENGTH
    whole = _entry_bytes(entry(CheckResult(decision), sample, _no_explanation))
    if not whole.endswith(sample):
        raise AssertionError("a CheckBulkResult's decision_id is no longer its last field")
    return whole[:-_ID_LENGTH]


def _no_explanation(result: CheckResult) -> core_pb2.Explanation:
    raise AssertionError("a plain entry has no explanation")


_PREFIX_ALLOWED = _prefix(Decision.ALLOWED)
_PREFIX_DENIED = _prefix(Decision.DENIED)
_PREFIX_CONDITIONAL = _prefix(Decision.CONDITIONAL)
# Compared by identity: a Decision hashes in Python, so no dictionary of them.
_ALLOWED, _DENIED = Decision.ALLOWED, Decision.DENIED


def response(
    results: Sequence[CheckResult | AuthzError],
    ids: Sequence[str],
    checked_at: core_pb2.ConsistencyToken,
    explain: Explain,
) -> permissions_pb2.CheckBulkResponse:
    """The CheckBulkResponse of `results` (in item order) and their decision ids."""
    # Ids of the usual length, in ASCII (one byte per character in UTF-8 and latin-1).
    usual_ids = set(map(len, ids)) == {_ID_LENGTH} and "".join(ids).isascii()
    # One comprehension, no call per plain entry: at a hundred entries a call each
    # would cost as much as writing them.
    written = "".join(
        [
            (
                _PREFIX_ALLOWED
                if (decision := result.decision) is _ALLOWED
                else _PREFIX_DENIED
                if decision is _DENIED
                else _PREFIX_CONDITIONAL
            )
            + decision_id
            if usual_ids
            and type(result) is CheckResult
            and result.explanation is None
            and not result.missing_context
            else _entry_bytes(entry(result, decision_id, explain))
            for result, decision_id in zip(results, ids, strict=True)
        ]
    )
    reply = permissions_pb2.CheckBulkResponse.FromString(written.encode("latin-1"))
    reply.checked_at.CopyFrom(checked_at)
    return reply
