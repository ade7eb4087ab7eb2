"""Writes, reads and read-your-writes tokens through the async client."""

from __future__ import annotations

import grpc
import pytest
from authz_client import (
    AlreadyExistsError,
    AsyncAuthzClient,
    Consistency,
    RelationshipFilter,
)
from client_support import Recorder

from authz_service.api.gen.authz.v1 import tenants_pb2, tenants_pb2_grpc


async def test_read_your_writes(server: str, recorder: Recorder, unique: str) -> None:
    async with AsyncAuthzClient(server, tenant="demo", interceptors=[recorder]) as client:
        assert client.last_token() is None
        written = await client.write_relationships([f"document:{unique}#viewer@user:erin"])
        assert client.last_token() == written.token

        result = await client.check(f"document:{unique}", "view", "user:erin")

    assert result.allowed
    sent = recorder.last("/Check").consistency
    assert sent.WhichOneof("requirement") == "at_least_as_fresh"
    assert sent.at_least_as_fresh.token == written.token


async def test_revocation_is_seen_by_the_next_check(client: AsyncAuthzClient, unique: str) -> None:
    doc = f"document:{unique}"
    await client.write_relationships([f"{doc}#viewer@user:erin"])
    assert (await client.check(doc, "view", "user:erin")).allowed
    await client.write_relationships([f"{doc}#viewer@user:erin"], operation="delete")
    assert not (await client.check(doc, "view", "user:erin")).allowed


async def test_explicit_consistency_wins(server: str, recorder: Recorder, unique: str) -> None:
    async with AsyncAuthzClient(server, tenant="demo", interceptors=[recorder]) as client:
        await client.write_relationships([f"document:{unique}#viewer@user:erin"])
        await client.check(
            "document:readme", "view", "user:alice", consistency=Consistency.fully_consistent()
        )
    assert recorder.last("/Check").consistency.fully_consistent


async def test_tokens_are_per_tenant(server: str, recorder: Recorder, unique: str) -> None:
    # Tenants exist only once created (the client has no tenant administration).
    async with grpc.aio.insecure_channel(server) as channel:
        await tenants_pb2_grpc.TenantServiceStub(channel).CreateTenant(
            tenants_pb2.CreateTenantRequest(name=f"other-{unique}")
        )
    async with AsyncAuthzClient(server, interceptors=[recorder]) as client:
        await client.write_relationships(
            [f"document:{unique}#viewer@user:erin"], tenant=f"other-{unique}"
        )
        result = await client.check("document:readme", "view", "user:alice", tenant="demo")
    assert result.allowed  # a token of the other tenant would be FAILED_PRECONDITION
    assert not recorder.last("/Check").HasField("consistency")


async def test_writes_carry_an_idempotency_key(
    server: str, recorder: Recorder, unique: str
) -> None:
    rel = f"document:{unique}#viewer@user:erin"
    async with AsyncAuthzClient(server, tenant="demo", interceptors=[recorder]) as client:
        first = await client.write_relationships([rel], idempotency_key=f"key-{unique}")
        again = await client.write_relationships([rel], idempotency_key=f"key-{unique}")
        await client.write_relationships([rel])
        await client.write_relationships([rel])

    assert again.token == first.token  # the server applied the key: nothing written twice
    keys = [r.idempotency_key for m, r in recorder.requests if m.endswith("/WriteRelationships")]
    assert keys[:2] == [f"key-{unique}"] * 2
    assert all(keys[2:])  # generated when not given...
    assert keys[2] != keys[3]  # ...one per logical write


async def test_a_replayed_write_says_so(client: AsyncAuthzClient, unique: str) -> None:
    rel = f"document:{unique}#viewer@user:erin"
    first = await client.write_relationships([rel], idempotency_key=f"key-{unique}")
    again = await client.write_relationships([rel], idempotency_key=f"key-{unique}")
    assert not first.replayed
    assert again.replayed


async def test_create_of_an_existing_relationship(client: AsyncAuthzClient, unique: str) -> None:
    rel = f"document:{unique}#viewer@user:erin"
    await client.write_relationships([rel], operation="create")
    with pytest.raises(AlreadyExistsError):
        await client.write_relationships([rel], operation="create")


async def test_read_and_delete_by_filter(client: AsyncAuthzClient, unique: str) -> None:
    written = [
        f"document:{unique}#viewer@user:erin",
        f'document:{unique}#viewer@user:frank[ip_allowlist:{{"cidr":"10.0.0.0/8"}}]',
    ]
    await client.write_relationships(written)
    only_this = RelationshipFilter(resource_type="document", resource_ids=(unique,))

    read = [r.text async for r in client.read_relationships(only_this)]
    assert sorted(read) == sorted(written)  # the text form survives the round trip
    assert len([r async for r in client.read_relationships(only_this, limit=1)]) == 1

    deleted = await client.delete_relationships(only_this)
    assert deleted.deleted_count == 2
    assert client.last_token() == deleted.token
    assert [r async for r in client.read_relationships(only_this)] == []


async def test_schema_round_trip(client: AsyncAuthzClient) -> None:
    current = await client.read_schema()
    assert current.current
    assert "definition document" in current.schema
    assert current.create_time is not None
    # Writing the same schema again changes nothing and returns the same version.
    written = await client.write_schema(current.schema)
    assert written.schema_version == current.schema_version
    assert written.orphaned == ()
    assert (await client.read_schema(current.schema_version)).schema == current.schema
