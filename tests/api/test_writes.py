"""Writes over gRPC: idempotency keys, preconditions and deletes by filter."""

from __future__ import annotations

import grpc
import pytest

from authz_service.api.gen.authz.v1 import relationships_pb2
from tests.api.helpers import ALLOWED, DENIED, Api, bad_request_fields, rel

_OP = relationships_pb2.RelationshipUpdate


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


def write(
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
    grant = write("document:secret#viewer@user:mallory", key="request-42")
    first = await api.relationships.WriteRelationships(grant)
    assert not first.replayed
    retried = await api.relationships.WriteRelationships(grant)
    assert (retried.replayed, retried.written_at) == (True, first.written_at)

    revoke = write("document:secret#viewer@user:mallory", _OP.OPERATION_DELETE, "request-42")
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
