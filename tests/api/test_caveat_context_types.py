"""Caveat context stored with a relationship must fit the caveat's parameter types
(docs/api.md, Errors). It was checked only for unknown names: `{"b": "x"}` for a `bool`
was written, and every later Check of it failed with INVALID_ARGUMENT blaming the request's
`context`, even one that was right. Now such a write is refused naming the value's field,
and a row stored before that is blamed by name: FAILED_PRECONDITION, never ALLOWED."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import permissions_pb2, relationships_pb2
from authz_service.app import App
from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from tests.api.helpers import ALLOWED, DENIED, Api, bad_request_fields, obj, rel, subj

SCHEMA = """
definition user {}
caveat flag(b bool) { b }
caveat quota(n int, tags list<string>) { n < 3 && "x" in tags }
definition thing {
    relation viewer: user | user with flag
    relation member: user with quota
    permission view = viewer + member
}
"""


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema(SCHEMA)
    return client


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def _touch(*texts: str) -> relationships_pb2.WriteRelationshipsRequest:
    op = relationships_pb2.RelationshipUpdate.OPERATION_TOUCH
    return relationships_pb2.WriteRelationshipsRequest(
        tenant="acme",
        updates=[
            relationships_pb2.RelationshipUpdate(operation=op, relationship=rel(t)) for t in texts
        ],
    )


@pytest.mark.parametrize(
    ("written", "field", "shown"),
    [
        ('thing:w5#viewer@user:alice[flag:{"b": "x"}]', "b", 'expects bool, got `"x"`'),
        ('thing:w5#member@user:alice[quota:{"n": "2"}]', "n", 'expects int, got `"2"`'),
        ('thing:w5#member@user:alice[quota:{"n": 1.5}]', "n", "expects int, got `1.5`"),
        ('thing:w5#member@user:alice[quota:{"tags": [1]}]', "tags", "expects list<string>"),
    ],
)
async def test_a_write_with_mistyped_context_is_refused_naming_the_value(
    api: Api, written: str, field: str, shown: str
) -> None:
    err = await _refused(
        api.relationships.WriteRelationships(_touch("thing:w5#viewer@user:bob", written))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert shown in (err.details() or "")
    assert bad_request_fields(err) == [f"updates[1].relationship.caveat.context.{field}"]
    # Nothing was written, bob's relationship included.
    reply = await api.check("acme", "thing:w5", "view", "user:bob", full=True)
    assert reply.decision == DENIED


async def test_a_write_with_well_typed_context_is_accepted(api: Api) -> None:
    await api.relationships.WriteRelationships(
        _touch(
            'thing:w5#viewer@user:alice[flag:{"b": true}]',
            'thing:w5#member@user:bob[quota:{"n": 2, "tags": ["x"]}]',
        )
    )
    assert (
        await api.check("acme", "thing:w5", "view", "user:alice", full=True)
    ).decision == ALLOWED
    assert (await api.check("acme", "thing:w5", "view", "user:bob", full=True)).decision == ALLOWED


async def test_a_mistyped_contextual_relationship_is_refused_naming_the_value(api: Api) -> None:
    request = permissions_pb2.CheckRequest(
        tenant="acme",
        resource=obj("thing:w5"),
        permission="view",
        subject=subj("user:alice"),
        contextual_relationships=[
            rel("thing:w5#viewer@user:bob"),
            rel('thing:w5#viewer@user:alice[flag:{"b": "x"}]'),
        ],
    )
    request.context.update({"b": True})
    err = await _refused(api.permissions.Check(request))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'expects bool, got `"x"`' in (err.details() or "")
    assert bad_request_fields(err) == ["contextual_relationships[1].caveat.context.b"]


async def test_a_row_stored_with_mistyped_context_is_blamed_not_the_request(
    app: App, api: Api
) -> None:
    """As written before writes were checked (here straight into the store)."""
    stored = parse_relationship('thing:w5#viewer@user:alice[flag:{"b": "x"}]')
    await app.store.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, stored)])
    for context in ({"b": True}, {}):
        err = await _refused(
            api.check("acme", "thing:w5", "view", "user:alice", full=True, context=context)
        )
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = err.details() or ""
        assert "relationship `thing:w5#viewer@user:alice` is stored with context" in details
        assert 'expects bool, got `"x"`' in details
        assert bad_request_fields(err) == []
