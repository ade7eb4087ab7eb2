"""Field rules the protos state ("Requires `resource_type`", "Must be empty for a
wildcard", "Must be true when set", ...) are enforced: INVALID_ARGUMENT naming the field,
and nothing written or deleted."""

from __future__ import annotations

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2, relationships_pb2
from tests.api.helpers import ALLOWED, DENIED, Api, bad_request_fields, obj, rel, subj

_TOUCH = relationships_pb2.RelationshipUpdate.OPERATION_TOUCH


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


async def _finish(call: object) -> None:
    if isinstance(call, grpc.aio.UnaryStreamCall):
        async for _ in call:
            pass
    else:
        await call  # type: ignore[misc]


async def _refused(call: object, field: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _finish(call)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert field in bad_request_fields(err), (bad_request_fields(err), err.details())
    return err


def _write(*relationships: core_pb2.Relationship) -> relationships_pb2.WriteRelationshipsRequest:
    return relationships_pb2.WriteRelationshipsRequest(
        tenant="acme",
        updates=[
            relationships_pb2.RelationshipUpdate(operation=_TOUCH, relationship=r)
            for r in relationships
        ],
    )


async def test_a_wildcard_subject_with_a_relation_is_refused(api: Api) -> None:
    bad = rel("document:x#viewer@user:*")
    bad.subject.relation = "member"
    err = await _refused(
        api.relationships.WriteRelationships(_write(bad)),
        "updates[0].relationship.subject.relation",
    )
    assert "member" in (err.details() or "")
    assert (await api.check("acme", "document:x", "view", "user:a", full=True)).decision == DENIED


async def test_a_caveat_context_without_a_caveat_name_is_refused(api: Api) -> None:
    """Dropping the nameless caveat would store the relationship unconditionally: a
    grant the writer meant to be conditional."""
    bad = rel("document:x#viewer@user:a")
    bad.caveat.context.update({"ip": "10.0.0.1"})
    await _refused(
        api.relationships.WriteRelationships(_write(bad)), "updates[0].relationship.caveat.name"
    )
    assert (await api.check("acme", "document:x", "view", "user:a", full=True)).decision == DENIED


async def test_an_empty_caveat_reference_means_no_caveat(api: Api) -> None:
    plain = rel("document:x#viewer@user:a")
    plain.caveat.SetInParent()  # set, but with neither name nor context
    await api.relationships.WriteRelationships(_write(plain))
    assert (await api.check("acme", "document:x", "view", "user:a", full=True)).decision == ALLOWED


@pytest.mark.parametrize(
    ("filter_", "field"),
    [
        (core_pb2.RelationshipFilter(resource_ids=["x"]), "filter.resource_ids"),
        (
            core_pb2.RelationshipFilter(resource_type="document", subject_ids=["a"]),
            "filter.subject_ids",
        ),
    ],
)
async def test_filter_ids_without_their_type_are_refused(
    api: Api, filter_: core_pb2.RelationshipFilter, field: str
) -> None:
    """Without the rule, `resource_ids: [x]` alone deleted every type's `x`."""
    await api.touch("acme", "document:x#viewer@user:a", "folder:x#viewer@user:a")
    await _refused(
        api.relationships.DeleteRelationships(
            relationships_pb2.DeleteRelationshipsRequest(tenant="acme", filter=filter_)
        ),
        field,
    )
    await _refused(
        api.relationships.ReadRelationships(
            relationships_pb2.ReadRelationshipsRequest(tenant="acme", filter=filter_)
        ),
        field,
    )
    for resource in ("document:x", "folder:x"):
        reply = await api.check("acme", resource, "view", "user:a", full=True)
        assert reply.decision == ALLOWED, resource


async def test_a_precondition_filter_follows_the_same_rule(api: Api) -> None:
    request = _write(rel("document:y#viewer@user:b"))
    request.preconditions.add(
        operation=relationships_pb2.Precondition.OPERATION_MUST_NOT_MATCH,
        filter=core_pb2.RelationshipFilter(subject_ids=["b"]),
    )
    await _refused(
        api.relationships.WriteRelationships(request), "preconditions[0].filter.subject_ids"
    )
    assert (await api.check("acme", "document:y", "view", "user:b", full=True)).decision == DENIED


async def test_an_unknown_precondition_operation_is_refused(api: Api) -> None:
    request = _write(rel("document:y#viewer@user:b"))
    request.preconditions.add(
        operation=7,
        filter=core_pb2.RelationshipFilter(resource_type="document"),
    )
    err = await _refused(
        api.relationships.WriteRelationships(request), "preconditions[0].operation"
    )
    assert "7" in (err.details() or "")
    assert (await api.check("acme", "document:y", "view", "user:b", full=True)).decision == DENIED


@pytest.mark.parametrize("which", ["minimize_latency", "fully_consistent"])
async def test_a_consistency_flag_set_to_false_is_refused(api: Api, which: str) -> None:
    request = permissions_pb2.CheckRequest(
        tenant="acme",
        resource=obj("document:x"),
        permission="view",
        subject=subj("user:a"),
    )
    setattr(request.consistency, which, False)
    assert request.consistency.WhichOneof("requirement") == which  # set, to false
    await _refused(api.permissions.Check(request), f"consistency.{which}")
