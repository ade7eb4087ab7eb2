"""CheckBulk answers every item as Check would, whichever conversion its batch takes,
from the evaluation and from the cache alike."""

from __future__ import annotations

import grpc
import pytest

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


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (_raw("document", "d 1", "view", "user", "alice"), "items[3].resource.object_id"),
        (_raw("document", "d1", "view", "user", "a\nb"), "items[3].subject.object.object_id"),
        (_raw("document", "d1", "", "user", "alice"), "items[3].permission"),
        (_raw("Document", "d1", "view", "user", "alice"), "items[3].resource.object_type"),
    ],
)
async def test_an_invalid_item_fails_the_call_naming_its_field(
    channel: grpc.aio.Channel, bad: PB.CheckBulkRequestItem, field: str
) -> None:
    api = Api(channel)
    await api.write_schema()
    token = await api.touch("acme", *RELATIONSHIPS)
    items = [_item("document:d1", "view", "user:alice")] * 3 + [bad] * 2
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _bulk(api, token, items)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(caught.value) == [field]
