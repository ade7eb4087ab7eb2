"""Promises of permissions.proto and core.proto the server must keep: CheckBulk's
`with_explanation`, at least one item per batch, and `ExplanationNode.contextual`."""

from __future__ import annotations

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from tests.api.helpers import ALLOWED, DENIED, Api, obj, rel, subj

PB = permissions_pb2


def _item(resource: str, subject: str) -> permissions_pb2.CheckBulkRequestItem:
    return PB.CheckBulkRequestItem(resource=obj(resource), permission="view", subject=subj(subject))


def _nodes(node: core_pb2.ExplanationNode) -> list[core_pb2.ExplanationNode]:
    found = [node]
    for child in node.children:
        found += _nodes(child)
    return found


async def test_check_bulk_with_explanation_explains_every_item(channel: grpc.aio.Channel) -> None:
    api = Api(channel)
    await api.write_schema()
    token = await api.touch("acme", "document:readme#viewer@user:alice")
    reply = await api.permissions.CheckBulk(
        PB.CheckBulkRequest(
            tenant="acme",
            consistency=core_pb2.Consistency(
                at_least_as_fresh=core_pb2.ConsistencyToken(token=token)
            ),
            items=[_item("document:readme", "user:alice"), _item("document:readme", "user:bob")],
            with_explanation=True,
        )
    )
    allowed, denied = (entry.result for entry in reply.items)
    assert (allowed.decision, denied.decision) == (ALLOWED, DENIED)
    granting = [
        n.relationship for n in _nodes(allowed.explanation.root) if n.HasField("relationship")
    ]
    assert [(r.resource.object_id, r.subject.object.object_id) for r in granting] == [
        ("readme", "alice")
    ]
    assert denied.explanation.HasField("root")
    assert denied.explanation.root.result == DENIED


async def test_check_bulk_without_explanation_returns_none(channel: grpc.aio.Channel) -> None:
    api = Api(channel)
    await api.write_schema()
    token = await api.touch("acme", "document:readme#viewer@user:alice")
    reply = await api.permissions.CheckBulk(
        PB.CheckBulkRequest(
            tenant="acme",
            consistency=core_pb2.Consistency(
                at_least_as_fresh=core_pb2.ConsistencyToken(token=token)
            ),
            items=[_item("document:readme", "user:alice")],
        )
    )
    assert not reply.items[0].result.HasField("explanation")


async def test_an_empty_batch_is_invalid_naming_items(channel: grpc.aio.Channel) -> None:
    api = Api(channel)
    await api.write_schema()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.permissions.CheckBulk(PB.CheckBulkRequest(tenant="acme"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "items" in (refused.value.details() or "")


async def test_a_contextual_relationship_in_an_explanation_is_marked_contextual(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema()
    token = await api.touch("acme", "document:readme#viewer@user:alice")
    fresh = core_pb2.Consistency(at_least_as_fresh=core_pb2.ConsistencyToken(token=token))
    for subject, contextual in (("user:bob", True), ("user:alice", False)):
        reply = await api.permissions.Check(
            PB.CheckRequest(
                tenant="acme",
                consistency=fresh,
                resource=obj("document:readme"),
                permission="view",
                subject=subj(subject),
                with_explanation=True,
                contextual_relationships=[rel("document:readme#viewer@user:bob")],
            )
        )
        assert reply.decision == ALLOWED
        leaves = [n for n in _nodes(reply.explanation.root) if n.HasField("relationship")]
        assert [n.contextual for n in leaves] == [contextual], subject
