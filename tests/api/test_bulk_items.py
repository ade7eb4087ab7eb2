"""CheckBulk's column-wise conversion agrees with converting item by item."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from hypothesis import example, given, settings
from hypothesis import strategies as st

from authz_service.api import bulk, convert
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from authz_service.engine import CheckItem
from authz_service.errors import InvalidArgument
from authz_service.service.bulk_items import check_item

TYPES = ["document", "org/document", "user", "Document", "do", "", "a" * 65, "doc\n"]
# Ids that hide the column separator, or are valid only when joined with their neighbours.
IDS = ["d1", "a/b|c=d+e-f_g", "*", "", "a b", "x" * 1024, "x" * 1025, "é", "a\nb", "\n", "a\n"]
RELATIONS = ["", "...", "member", "BAD"]


def full(msg: permissions_pb2.CheckBulkRequestItem) -> CheckItem:
    """The item-by-item conversion (the servicer's `_item`)."""
    plain = convert.plain_check_item(msg)
    if plain is not None:
        return plain
    if not msg.permission:
        raise InvalidArgument("permission is required", field="permission")
    return CheckItem(
        resource=convert.object_ref(msg.resource, "resource"),
        permission=msg.permission,
        subject=convert.subject_ref(msg.subject, "subject"),
        context=convert.context(msg.context, "context"),
    )


def message(
    rtype: str, rid: str, permission: str, stype: str, sid: str, relation: str, context: bool
) -> permissions_pb2.CheckBulkRequestItem:
    msg = permissions_pb2.CheckBulkRequestItem(
        resource=core_pb2.ObjectReference(object_type=rtype, object_id=rid),
        permission=permission,
        subject=core_pb2.SubjectReference(
            object=core_pb2.ObjectReference(object_type=stype, object_id=sid),
            relation=relation,
        ),
    )
    if context:
        msg.context.CopyFrom(struct_pb2.Struct())
    return msg


def common(valid: bool) -> Any:
    """Mostly items in the common form, sometimes anything from the pools above."""
    parts: list[Any] = [
        st.sampled_from(TYPES[:3]),
        st.sampled_from(IDS[:2]),
        st.sampled_from(["view"]),
        st.sampled_from(TYPES[:3]),
        st.sampled_from(IDS[:2]),
        st.just(""),
        st.just(False),
    ]
    if not valid:
        parts = [
            st.sampled_from(TYPES),
            st.sampled_from(IDS),
            st.sampled_from(["view", ""]),
            st.sampled_from(TYPES),
            st.sampled_from(IDS),
            st.sampled_from(RELATIONS),
            st.booleans(),
        ]
    return st.tuples(*parts).map(lambda t: message(*t))


ITEMS = st.lists(st.one_of(common(True), common(True), common(False)), max_size=12)


@settings(max_examples=1500, deadline=None)
@given(ITEMS)
@example([message("document", "a\nb", "view", "user", "u", "", False)])
@example([message("document", "a\n", "view", "user", "u", "", False)])
@example([message("document", "d", "view", "user", "\n", "", False)])
def test_the_columns_convert_to_the_same_items_or_to_none(
    msgs: list[permissions_pb2.CheckBulkRequestItem],
) -> None:
    found = bulk.plain_items(msgs)
    expected: list[CheckItem] | None = []
    for msg in msgs:
        try:
            item = full(msg)
        except InvalidArgument:
            expected = None  # item by item, the call fails naming the field
            break
        assert expected is not None
        expected.append(item)
    if found is None:
        # Only left to the item-by-item path: refused there, or not in the common form.
        plain = expected is not None and all(
            m.subject.relation == "" and not m.HasField("context") for m in msgs
        )
        assert not plain, msgs
        return
    assert expected is not None, msgs  # never accepts what item by item refuses
    assert [check_item(p) for p in found] == expected


# Shared across examples, and small: items are remembered, forgotten and met again.
KNOWN = bulk.KnownItems(maxsize=20)


@settings(max_examples=600, deadline=None)
@given(ITEMS)
def test_remembered_items_convert_as_the_columns_do(
    msgs: list[permissions_pb2.CheckBulkRequestItem],
) -> None:
    expected = bulk.plain_items(msgs)
    assert KNOWN.convert(msgs) == expected
    assert KNOWN.convert(msgs) == expected  # the same call again, now remembered


def test_a_page_of_common_items_takes_the_columns() -> None:
    msgs = [message("document", f"d{i}", "view", "user", f"u{i}", "", False) for i in range(100)]
    found = bulk.plain_items(msgs)
    assert found is not None
    assert found[7] == ("document", "d7", "view", "user", "u7", "")


def test_an_empty_batch_is_left_to_the_service() -> None:
    assert bulk.plain_items([]) == []
