"""Tenancy and audit through the client, against a server on PostgreSQL with the log on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from authz_client import AsyncAuthzClient, Decision, NotFoundError


@pytest.fixture
async def tenant_client(pg_server: str) -> AsyncIterator[AsyncAuthzClient]:
    tenant = f"adm-{uuid.uuid4().hex[:10]}"
    async with AsyncAuthzClient(pg_server, tenant=tenant) as client:
        await client.create_tenant(tenant, reason="test")
        yield client


async def test_roles_bindings_and_reach(tenant_client: AsyncAuthzClient) -> None:
    client = tenant_client
    await client.create_role("reader", [("document", "view")], description="reads")
    await client.create_role("editor", [("document", "edit"), ("document", "view")])

    proposed = await client.grant_reach(role="reader", subject="user:gina", resource="document:x")
    assert proposed.resource_count == 1
    assert [(r.resource, r.permissions) for r in proposed.resources] == [("document:x", ("view",))]

    bound = await client.create_binding("reader", "user:gina", "document:x")
    assert bound.binding.subject == "user:gina"
    assert bound.binding.resource == "document:x"
    # Read-your-writes: the binding's token is sent with the next check.
    assert client.last_token() == bound.token
    assert (await client.check("document:x", "view", "user:gina")).allowed
    assert not (await client.check("document:x", "edit", "user:gina")).allowed

    first = await client.list_roles(limit=1)
    assert len(first.items) == 1
    assert first.next_cursor
    rest = await client.list_roles(cursor=first.next_cursor)
    names = {r.name for r in first.items + rest.items}
    assert {"reader", "editor"} <= names

    [binding] = (await client.list_bindings(role="reader")).items
    assert binding.binding_id == bound.binding.binding_id
    deleted = await client.delete_role("reader", cascade=True)
    assert deleted.deleted_binding_count == 1
    assert not (await client.check("document:x", "view", "user:gina")).allowed


async def test_subject_lifecycle(tenant_client: AsyncAuthzClient) -> None:
    client = tenant_client
    await client.write_relationships(["document:y#viewer@user:hal"])
    assert (await client.get_subject_status("user:hal")).status == "active"

    suspended = await client.suspend_subject("user:hal", reason="investigation")
    assert suspended.previous_status == "active"
    explained = await client.explain("document:y", "view", "user:hal")
    assert explained.decision is Decision.DENIED
    assert explained.explanation.deny_reason == "subject_suspended"
    status = await client.get_subject_status("user:hal")
    assert (status.status, status.reason) == ("suspended", "investigation")

    await client.reactivate_subject("user:hal", reason="cleared")
    assert (await client.check("document:y", "view", "user:hal")).allowed

    gone = await client.deprovision_subject("user:hal", reason="left")
    assert gone.removed_relationships == ("document:y#viewer@user:hal",)
    assert not (await client.check("document:y", "view", "user:hal")).allowed


async def test_audit_query_verify_explain(tenant_client: AsyncAuthzClient) -> None:
    client = tenant_client
    await client.write_relationships(["document:z#viewer@user:ivy"])
    decided = await client.check("document:z", "view", "user:ivy")
    await client.check("document:z", "view", "user:jon")

    found = [r async for r in client.query_decisions(subject="user:ivy", kind="check")]
    assert [r.decision_id for r in found] == [decided.decision_id]
    record = found[0]
    assert (record.resource, record.action, record.decision) == (
        "document:z",
        "view",
        Decision.ALLOWED,
    )
    denied = [r async for r in client.query_decisions(decision=Decision.DENIED)]
    assert [r.subject for r in denied] == ["user:jon"]

    explained = await client.explain_decision(decided.decision_id)
    assert explained.decision_id == decided.decision_id
    assert explained.hash

    verification = await client.verify_log()
    assert verification.verified
    assert verification.first_problem is None
    assert verification.record_count >= 2

    with pytest.raises(NotFoundError):
        await client.explain_decision("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(ValueError, match="unknown decision kind"):
        client.query_decisions(kind="nonsense")


async def test_naive_times_are_refused_before_any_call(client: AsyncAuthzClient) -> None:
    with pytest.raises(ValueError, match="start_time: `2026-01-01T00:00:00` needs a time zone"):
        client.query_decisions(start_time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="expire_time"):
        await client.create_key(scopes=["check"], expire_time=datetime(2030, 1, 1))
