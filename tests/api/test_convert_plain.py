"""The fast conversion of a Check item agrees with the full one: same item, or none."""

from __future__ import annotations

import itertools

import pytest
from google.protobuf import struct_pb2

from authz_service.api import convert
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from authz_service.engine import CheckItem
from authz_service.errors import InvalidArgument

TYPES = ["document", "org/document", "doc", "Document", "do", "", "a" * 65, "user_"]
IDS = ["d1", "a/b|c=d+e-f_g", "*", "", "a b", "x" * 1024, "x" * 1025, "é"]
RELATIONS = ["", "...", "member", "BAD"]


def full(msg: permissions_pb2.CheckBulkRequestItem) -> CheckItem:
    """The full conversion, as the servicer did before the fast path."""
    if not msg.permission:
        raise InvalidArgument("permission is required", field="permission")
    return CheckItem(
        resource=convert.object_ref(msg.resource, "resource"),
        permission=msg.permission,
        subject=convert.subject_ref(msg.subject, "subject"),
        context=convert.context(msg.context, "context"),
    )


def messages() -> list[permissions_pb2.CheckBulkRequestItem]:
    found = []
    for rtype, rid, stype, sid, relation, permission in itertools.product(
        TYPES[:4] + TYPES[5:7], IDS, TYPES[:3] + TYPES[4:6], IDS[:5], RELATIONS, ["view", ""]
    ):
        found.append(
            permissions_pb2.CheckBulkRequestItem(
                resource=core_pb2.ObjectReference(object_type=rtype, object_id=rid),
                permission=permission,
                subject=core_pb2.SubjectReference(
                    object=core_pb2.ObjectReference(object_type=stype, object_id=sid),
                    relation=relation,
                ),
            )
        )
    return found


def test_the_plain_form_converts_to_the_same_item_and_anything_else_is_left() -> None:
    plain = 0
    for msg in messages():
        fast = convert.plain_check_item(msg)
        try:
            expected = full(msg)
        except InvalidArgument:
            assert fast is None, msg  # never accepts what the full conversion refuses
            continue
        if fast is not None:
            plain += 1
            assert fast == expected, msg
    assert plain > 100  # the common form does take the fast path


@pytest.mark.parametrize(
    "context",
    [struct_pb2.Struct(), struct_pb2.Struct(fields={"ip": struct_pb2.Value(string_value="x")})],
)
def test_an_item_with_a_context_takes_the_full_conversion(context: struct_pb2.Struct) -> None:
    msg = permissions_pb2.CheckRequest(
        resource=core_pb2.ObjectReference(object_type="document", object_id="d"),
        permission="view",
        subject=core_pb2.SubjectReference(
            object=core_pb2.ObjectReference(object_type="user", object_id="u")
        ),
    )
    msg.context.CopyFrom(context)
    assert convert.plain_check_item(msg) is None


def test_a_plain_check_request_converts_like_a_bulk_item() -> None:
    msg = permissions_pb2.CheckRequest(
        resource=core_pb2.ObjectReference(object_type="document", object_id="d"),
        permission="view",
        subject=core_pb2.SubjectReference(
            object=core_pb2.ObjectReference(object_type="user", object_id="u"), relation="..."
        ),
    )
    assert convert.plain_check_item(msg) == full(msg)  # type: ignore[arg-type]
