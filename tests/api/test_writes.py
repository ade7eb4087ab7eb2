"""Writes over gRPC: idempotency keys, preconditions and deletes by filter."""

from __future__ import annotations

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, relationships_pb2, tenancy_pb2
from tests.api.helpers import ALLOWED, DENIED, Api, bad_request_fields, rel, subj
from tests.tenancy.helpers import SCHEMA as TENANCY_SCHEMA
from tests.tenancy.helpers import binding_msg, tenancy_stub

_OP = relationships_pb2.RelationshipUpdate


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


def write_one(
    text: str, op: int = _OP.OPERATION_TOUCH, key: str = ""
) -> relationships_pb2.WriteRelationshipsRequest:
    return relationships_pb2.WriteRelationshipsRequest(
        tenant="acme",
        updates=[relationships_pb2.RelationshipUpdate(operation=op, relationship=rel(text))],
        idempotency_key=key,
    )


async def test_a_revocation_under_a_used_idempotency_key_is_refused_not_dropped(
    api: Api,
) -> None:
    grant = write_one("document:secret#viewer@user:mallory", key="request-42")
    first = await api.relationships.WriteRelationships(grant)
    assert not first.replayed
    retried = await api.relationships.WriteRelationships(grant)
    assert (retried.replayed, retried.written_at) == (True, first.written_at)

    revoke = write_one("document:secret#viewer@user:mallory", _OP.OPERATION_DELETE, "request-42")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.relationships.WriteRelationships(revoke)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "`request-42`" in (err.value.details() or "")
    assert bad_request_fields(err.value) == ["idempotency_key"]
    # Nothing was written under the key, and a new key revokes.
    check = await api.check("acme", "document:secret", "view", "user:mallory", full=True)
    assert check.decision == ALLOWED
    revoke.idempotency_key = "request-43"
    done = await api.relationships.WriteRelationships(revoke)
    assert not done.replayed
    check = await api.check("acme", "document:secret", "view", "user:mallory", full=True)
    assert check.decision == DENIED


async def test_delete_by_subject_alone_removes_it_everywhere(channel: grpc.aio.Channel) -> None:
    api, tenancy = Api(channel), tenancy_stub(channel)
    await api.write_schema(TENANCY_SCHEMA)
    await api.touch(
        "acme",
        "invoice:a#owner@user:erin",
        "folder:f#viewer@user:erin",
        "group:g#member@user:erin",
        "invoice:a#owner@user:bob",
    )
    # A role binding is internal data about erin: deleting relationships leaves it alone.
    await tenancy.CreateBinding(
        tenancy_pb2.CreateBindingRequest(tenant="acme", binding=binding_msg("auditor", "user:erin"))
    )
    reply = await api.relationships.DeleteRelationships(
        relationships_pb2.DeleteRelationshipsRequest(
            tenant="acme",
            filter=core_pb2.RelationshipFilter(subject_type="user", subject_ids=["erin"]),
        )
    )
    assert reply.deleted_count == 3
    fresh = core_pb2.Consistency(at_least_as_fresh=reply.deleted_at)
    left = api.relationships.ReadRelationships(
        relationships_pb2.ReadRelationshipsRequest(tenant="acme", consistency=fresh)
    )
    assert [r.relationship.subject.object.object_id async for r in left] == ["bob"]
    bindings = await tenancy.ListBindings(
        tenancy_pb2.ListBindingsRequest(tenant="acme", subject=subj("user:erin"), consistency=fresh)
    )
    assert [b.role for b in bindings.bindings] == ["auditor"]


async def test_an_empty_delete_filter_is_refused(api: Api) -> None:
    await api.touch("acme", "document:a#viewer@user:erin")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.relationships.DeleteRelationships(
            relationships_pb2.DeleteRelationshipsRequest(tenant="acme")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(err.value) == ["filter"]


def _precondition(must_match: bool, **fields: object) -> relationships_pb2.Precondition:
    op = relationships_pb2.Precondition
    return op(
        operation=op.OPERATION_MUST_MATCH if must_match else op.OPERATION_MUST_NOT_MATCH,
        filter=core_pb2.RelationshipFilter(**fields),  # type: ignore[arg-type]
    )


async def test_a_failed_precondition_names_its_index(api: Api) -> None:
    await api.touch("acme", "document:a#viewer@user:erin")
    holds = _precondition(True, resource_type="document", resource_ids=["a"])
    fails = _precondition(False, subject_type="user", subject_ids=["erin"])
    write = write_one("document:b#viewer@user:bob")
    write.preconditions.extend([holds, fails])
    delete = relationships_pb2.DeleteRelationshipsRequest(
        tenant="acme",
        filter=core_pb2.RelationshipFilter(resource_type="document"),
        preconditions=[holds, holds, fails],
    )
    for call, index in (
        (api.relationships.WriteRelationships(write), 1),
        (api.relationships.DeleteRelationships(delete), 2),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert bad_request_fields(err.value) == [f"preconditions[{index}]"]
        assert f"`preconditions[{index}]`" in (err.value.details() or "")
    left = api.relationships.ReadRelationships(
        relationships_pb2.ReadRelationshipsRequest(
            tenant="acme", consistency=core_pb2.Consistency(fully_consistent=True)
        )
    )
    assert [r.relationship.resource.object_id async for r in left] == ["a"]


@pytest.mark.parametrize(
    ("seconds", "nanos", "decision"),
    [(-62_135_596_800, 0, DENIED), (253_402_300_799, 999_999_999, ALLOWED)],
    ids=["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"],
)
async def test_an_expiration_at_either_end_of_the_timestamp_range_is_served(
    api: Api, seconds: int, nanos: int, decision: int
) -> None:
    # Both instants are accepted (docs/api.md: years 1 to 9999); the database driver
    # stores them as -infinity / infinity and read them back as naive datetimes, so every
    # later Check, read or Watch of the tenant answered INTERNAL.
    await api.write_schema(
        "use expiration\ndefinition user {}\n"
        "definition document {\n relation viewer: user with expiration\n"
        " permission view = viewer\n}",
        force=True,
    )
    grant = rel("document:edge#viewer@user:ann")
    grant.expires_at.seconds, grant.expires_at.nanos = seconds, nanos
    await api.relationships.WriteRelationships(
        relationships_pb2.WriteRelationshipsRequest(
            tenant="acme",
            updates=[_OP(operation=_OP.OPERATION_TOUCH, relationship=grant)],
        )
    )
    check = await api.check("acme", "document:edge", "view", "user:ann", full=True)
    assert check.decision == decision
    read = api.relationships.ReadRelationships(
        relationships_pb2.ReadRelationshipsRequest(
            tenant="acme", consistency=core_pb2.Consistency(fully_consistent=True)
        )
    )
    stamps = [
        (r.relationship.expires_at.seconds, r.relationship.expires_at.nanos) async for r in read
    ]
    # Stored to the microsecond.
    assert stamps == [(seconds, nanos // 1000 * 1000)]
