"""Decisions through the async client, against the real server's demo data."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from authz_client import (
    AsyncAuthzClient,
    AuthzClientError,
    CheckItem,
    Decision,
    InvalidArgumentError,
    RpcError,
    TextFormError,
)


async def test_check_allowed_and_denied(client: AsyncAuthzClient) -> None:
    allowed = await client.check("document:readme", "view", "user:alice")
    assert allowed.allowed
    assert allowed.decision is Decision.ALLOWED
    assert allowed.decision_id
    assert allowed.token
    assert allowed.missing_context == ()

    # bob may view through his group, but he is banned from the roadmap.
    denied = await client.check("document:roadmap", "view", "user:bob", tenant="demo")
    assert not denied.allowed
    assert denied.decision is Decision.DENIED


async def test_result_is_frozen(client: AsyncAuthzClient) -> None:
    result = await client.check("document:readme", "view", "user:alice")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.decision = Decision.DENIED  # type: ignore[misc]


async def test_check_echoes_subject_actor_reason_and_agents(client: AsyncAuthzClient) -> None:
    # permissions.proto: CheckResponse echoes the request's subject, actor, reason, agents.
    plain = await client.check("document:readme", "view", "user:alice")
    assert (plain.subject, plain.actor, plain.reason, plain.agents) == ("user:alice", "", "", ())
    acting = await client.check(
        "document:readme", "view", "user:alice", actor="user:sam", reason="ticket 42"
    )
    assert (acting.subject, acting.actor, acting.reason) == ("user:alice", "user:sam", "ticket 42")
    chain = await client.check(
        "document:readme", "view", "group:eng#member", agents=["user:bob", "user:alice"]
    )
    assert (chain.subject, chain.agents) == ("group:eng#member", ("user:bob", "user:alice"))


async def test_conditional_names_missing_context(client: AsyncAuthzClient) -> None:
    conditional = await client.check("document:vpn-guide", "view", "user:dave")
    assert conditional.decision is Decision.CONDITIONAL
    assert not conditional.allowed
    assert conditional.missing_context == ("user_ip",)

    inside = await client.check(
        "document:vpn-guide", "view", "user:dave", context={"user_ip": "10.1.2.3"}
    )
    outside = await client.check(
        "document:vpn-guide", "view", "user:dave", context={"user_ip": "192.168.0.1"}
    )
    assert inside.allowed
    assert outside.decision is Decision.DENIED


async def test_check_bulk_answers_in_order_with_item_errors(client: AsyncAuthzClient) -> None:
    results = await client.check_bulk(
        [
            ("document:readme", "view", "user:alice"),
            CheckItem("document:readme", "no_such_permission", "user:alice"),
            CheckItem("document:vpn-guide", "view", "user:dave", {"user_ip": "10.0.0.1"}),
            ("document:roadmap", "view", "user:bob"),
        ]
    )
    assert [r.decision for r in results] == [
        Decision.ALLOWED,
        Decision.UNSPECIFIED,
        Decision.ALLOWED,
        Decision.DENIED,
    ]
    failed = results[1]
    assert not failed.allowed
    assert isinstance(failed.error, InvalidArgumentError)
    assert "no_such_permission" in failed.error.message
    assert len({r.token for r in results}) == 1  # one revision for the batch


async def test_list_permissions(client: AsyncAuthzClient) -> None:
    owner = await client.list_permissions("document:readme", "user:alice")
    assert owner.allowed == {"view", "edit", "delete"}
    banned = await client.list_permissions("document:roadmap", "user:bob")
    assert banned.allowed == frozenset()
    assert [p.permission for p in banned.permissions] == ["edit", "view", "delete"]


async def test_lookup_resources_and_subjects(client: AsyncAuthzClient) -> None:
    alice = {r.resource_id async for r in client.lookup_resources("document", "view", "user:alice")}
    bob = {r.resource_id async for r in client.lookup_resources("document", "view", "user:bob")}
    assert {"readme", "roadmap"} <= alice
    assert "readme" in bob
    assert "roadmap" not in bob

    viewers = {
        s.subject_id async for s in client.lookup_subjects("document:roadmap", "view", "user")
    }
    assert {"alice", "carol"} <= viewers
    assert "bob" not in viewers


async def test_lookup_limit(client: AsyncAuthzClient) -> None:
    found = [r async for r in client.lookup_resources("document", "view", "user:alice", limit=1)]
    assert len(found) == 1


async def test_invalid_argument_carries_field_violations(client: AsyncAuthzClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.check("document:readme", "frobnicate", "user:alice")
    error = caught.value
    assert isinstance(error, RpcError)
    assert isinstance(error, AuthzClientError)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "frobnicate" in error.message
    assert [v.field for v in error.field_violations] == ["permission"]

    with pytest.raises(InvalidArgumentError) as caught:
        await client.check("document:readme", "view", "user:alice", tenant="not a tenant")
    assert [v.field for v in caught.value.field_violations] == ["tenant"]


async def test_text_form_error_is_raised_before_any_call(client: AsyncAuthzClient) -> None:
    with pytest.raises(TextFormError, match="user:al ice"):
        await client.check("document:readme", "view", "user:al ice")
    with pytest.raises(TextFormError):
        client.lookup_resources("document", "view", "alice")  # not even iterated


async def test_missing_tenant_is_refused(server: str) -> None:
    async with AsyncAuthzClient(server) as client:
        with pytest.raises(ValueError, match="no tenant"):
            await client.check("document:readme", "view", "user:alice")
