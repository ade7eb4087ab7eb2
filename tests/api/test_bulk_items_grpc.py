"""CheckBulk answers every item as Check would, whichever conversion its batch takes,
from the evaluation and from the cache alike."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from tests.api.helpers import Api, bad_request_fields, obj, subj

PB = permissions_pb2

RELATIONSHIPS = (
    "document:d1#viewer@user:alice",
    "document:d2#viewer@group:eng#member",
    "group:eng#member@user:bob",
    "document:d3#viewer@user:*",
    "document:d3#banned@user:carol",
)
QUESTIONS = [
    (resource, permission, subject)
    for resource in ("document:d1", "document:d2", "document:d3", "document:d4")
    for permission in ("view", "viewer", "banned")
    for subject in ("user:alice", "user:bob", "user:carol", "group:eng#member")
]


def _item(resource: str, permission: str, subject: str) -> PB.CheckBulkRequestItem:
    return PB.CheckBulkRequestItem(
        resource=obj(resource), permission=permission, subject=subj(subject)
    )


def _raw(rtype: str, rid: str, permission: str, stype: str, sid: str) -> PB.CheckBulkRequestItem:
    """An item as sent, valid or not."""
    return PB.CheckBulkRequestItem(
        resource=core_pb2.ObjectReference(object_type=rtype, object_id=rid),
        permission=permission,
        subject=core_pb2.SubjectReference(
            object=core_pb2.ObjectReference(object_type=stype, object_id=sid)
        ),
    )


async def _bulk(api: Api, token: str, items: list[PB.CheckBulkRequestItem]) -> PB.CheckBulkResponse:
    fresh = core_pb2.Consistency(at_least_as_fresh=core_pb2.ConsistencyToken(token=token))
    return await api.permissions.CheckBulk(
        PB.CheckBulkRequest(tenant="acme", consistency=fresh, items=items)
    )


def _decisions(reply: PB.CheckBulkResponse) -> list[object]:
    return [
        e.result.decision if e.WhichOneof("outcome") == "result" else e.error.code
        for e in reply.items
    ]


@pytest.mark.parametrize("form", ["plain", "with `...`", "with a context"])
async def test_every_item_is_answered_as_check_answers_it(
    channel: grpc.aio.Channel, form: str
) -> None:
    api = Api(channel)
    await api.write_schema()
    token = await api.touch("acme", *RELATIONSHIPS)
    items = [_item(*q) for q in QUESTIONS]
    for item in items:
        if form == "with `...`" and not item.subject.relation:
            item.subject.relation = "..."
        if form == "with a context":
            item.context.update({"ip": "10.0.0.1"})
    checks = [
        (await api.check("acme", *q, fresh=token, context={"ip": "10.0.0.1"})).decision
        for q in QUESTIONS
    ]
    first = await _bulk(api, token, items)
    again = await _bulk(api, token, items)  # from the decision cache
    assert _decisions(first) == _decisions(again) == checks
    ids = [e.result.decision_id for reply in (first, again) for e in reply.items]
    assert len(set(ids)) == len(ids) == 2 * len(items)


async def test_an_item_the_engine_refuses_is_an_error_of_that_item_only(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema()
    token = await api.touch("acme", *RELATIONSHIPS)
    items = [_item("document:d1", "view", "user:alice"), _item("document:d1", "edit", "user:alice")]
    for reply in (await _bulk(api, token, items), await _bulk(api, token, items)):
        allowed, refused = reply.items
        assert allowed.result.decision == core_pb2.DECISION_ALLOWED
        assert refused.WhichOneof("outcome") == "error"
        assert refused.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def _item_fields(status: status_pb2.Status) -> list[str]:
    fields = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields.extend(v.field for v in bad.field_violations)
    return fields


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (_raw("document", "d 1", "view", "user", "alice"), "resource.object_id"),
        (_raw("document", "d1", "view", "user", "a\nb"), "subject.object.object_id"),
        (_raw("document", "d1", "", "user", "alice"), "permission"),
        (_raw("Document", "d1", "view", "user", "alice"), "resource.object_type"),
    ],
)
async def test_an_invalid_item_is_an_error_in_its_slot_only(
    channel: grpc.aio.Channel, bad: PB.CheckBulkRequestItem, field: str
) -> None:
    """permissions.proto: items fail independently, the item's field paths relative to it."""
    api = Api(channel)
    await api.write_schema()
    token = await api.touch("acme", *RELATIONSHIPS)
    good = _item("document:d1", "view", "user:alice")
    for items in ([good, bad, good, good, bad], [bad, bad]):
        reply = await _bulk(api, token, items)
        assert len(reply.items) == len(items)
        ids = []
        for sent, answer in zip(items, reply.items, strict=True):
            if sent is good:
                assert answer.result.decision == core_pb2.DECISION_ALLOWED
                ids.append(answer.result.decision_id)
            else:
                assert answer.WhichOneof("outcome") == "error"
                assert answer.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
                assert _item_fields(answer.error) == [field]
        assert len(set(ids)) == len(ids)
        assert all(ids)


async def test_batch_problems_still_fail_the_call_when_items_are_bad(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema()
    bad = _raw("document", "d 1", "view", "user", "alice")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.permissions.CheckBulk(PB.CheckBulkRequest(tenant="nobody", items=[bad]))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.permissions.CheckBulk(PB.CheckBulkRequest(tenant="acme", items=[bad] * 1001))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(caught.value) == ["items"]
    # An actor the schema cannot have fails the batch whether or not an item is good.
    for items in ([bad], [bad, _item("document:d1", "view", "user:alice")]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.permissions.CheckBulk(
                PB.CheckBulkRequest(
                    tenant="acme", items=items, actor=subj("spaceship:x"), reason="support"
                )
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, len(items)
