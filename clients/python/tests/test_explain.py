"""Explain, impersonation and contextual relationships through the client (demo data)."""

from __future__ import annotations

import pytest
from authz_client import (
    AsyncAuthzClient,
    AuthzClient,
    Decision,
    ExplanationNode,
    InvalidArgumentError,
)


def _nodes(node: ExplanationNode) -> list[ExplanationNode]:
    return [node, *(n for child in node.children for n in _nodes(child))]


async def test_explain_returns_the_tree(client: AsyncAuthzClient) -> None:
    result = await client.explain("document:readme", "view", "user:alice")
    assert result.allowed
    assert result.decision_id
    root = result.explanation.root
    assert root is not None
    assert root.kind == "permission"
    assert root.object == "document:readme"
    assert root.result is Decision.ALLOWED
    relationships = {n.relationship for n in _nodes(root) if n.kind == "relationship"}
    assert "document:readme#owner@user:alice" in relationships

    denied = await client.explain("document:roadmap", "view", "user:bob")
    assert denied.decision is Decision.DENIED
    assert denied.explanation.deny_reason == "excluded"
    # The operator step: its expression in `expression`, why it denied in `reason`, and no
    # relation name (it has none).
    assert denied.explanation.root is not None
    (exclusion,) = [n for n in _nodes(denied.explanation.root) if n.kind == "exclusion"]
    assert exclusion.expression == "(viewer + edit + folder->view) - banned"
    assert exclusion.reason == "excluded by `banned`"
    assert exclusion.relation == ""


async def test_check_with_explanation(client: AsyncAuthzClient) -> None:
    plain = await client.check("document:readme", "view", "user:alice")
    explained = await client.check("document:readme", "view", "user:alice", with_explanation=True)
    assert plain.explanation is None
    assert explained.explanation is not None
    assert explained.explanation.root is not None


async def test_check_bulk_with_explanation(client: AsyncAuthzClient) -> None:
    items = [("document:readme", "view", "user:alice"), ("document:roadmap", "view", "user:bob")]
    plain = await client.check_bulk(items)
    explained = await client.check_bulk(items, with_explanation=True)
    assert [r.explanation for r in plain] == [None, None]
    assert [r.decision for r in explained] == [Decision.ALLOWED, Decision.DENIED]
    readme, roadmap = (r.explanation for r in explained)
    assert readme is not None
    assert readme.root is not None
    assert "document:readme#owner@user:alice" in {
        n.relationship for n in _nodes(readme.root) if n.kind == "relationship"
    }
    assert roadmap is not None
    assert roadmap.deny_reason == "excluded"


async def test_impersonation(client: AsyncAuthzClient) -> None:
    # sam supports alice: acting for her he may view, but never delete (non-delegable).
    view = await client.check(
        "document:readme", "view", "user:alice", actor="user:sam", reason="ticket 42"
    )
    delete = await client.check(
        "document:readme", "delete", "user:alice", actor="user:sam", reason="ticket 42"
    )
    stranger = await client.check(
        "document:readme", "view", "user:alice", actor="user:bob", reason="ticket 42"
    )
    assert view.allowed
    assert delete.decision is Decision.DENIED
    assert stranger.decision is Decision.DENIED
    explained = await client.explain(
        "document:readme", "delete", "user:alice", actor="user:sam", reason="ticket 42"
    )
    assert explained.explanation.deny_reason == "non_delegable"

    with pytest.raises(InvalidArgumentError) as caught:
        await client.check("document:readme", "view", "user:alice", actor="user:sam")
    assert [v.field for v in caught.value.field_violations] == ["reason"]


def test_contextual_relationships(server: str) -> None:
    grant = ["document:roadmap#viewer@user:erin"]
    with AuthzClient(server, tenant="demo") as client:
        assert not client.check("document:roadmap", "view", "user:erin").allowed
        assert client.check(
            "document:roadmap", "view", "user:erin", contextual_relationships=grant
        ).allowed
        listed = client.list_permissions(
            "document:roadmap", "user:erin", contextual_relationships=grant
        )
        assert listed.allowed == {"view"}
        [bulk] = client.check_bulk(
            [("document:roadmap", "view", "user:erin")], contextual_relationships=grant
        )
        assert bulk.allowed
        # Never stored: the next call without it is denied again.
        assert not client.check("document:roadmap", "view", "user:erin").allowed


async def test_delegation_to_agents(client: AsyncAuthzClient) -> None:
    # Allowed only where the subject and every agent are: bob may view the readme, sam not.
    both = await client.check("document:readme", "view", "user:alice", agents=["user:bob"])
    assert both.allowed
    explained = await client.explain("document:readme", "view", "user:alice", agents=["user:sam"])
    assert explained.decision is Decision.DENIED
    assert explained.explanation.deny_reason == "agent_not_allowed"
    [bulk] = await client.check_bulk(
        [("document:readme", "view", "user:alice")], agents=["user:sam"]
    )
    assert bulk.decision is Decision.DENIED


async def test_a_caveated_step_carries_its_caveat_s_evaluation(client: AsyncAuthzClient) -> None:
    result = await client.explain("document:vpn-guide", "view", "user:dave")
    assert result.decision is Decision.CONDITIONAL
    assert result.explanation.root is not None
    (step,) = [n for n in _nodes(result.explanation.root) if n.caveat is not None]
    assert step.caveat.name == "ip_allowlist"
    assert step.caveat.context == {"cidr": "10.0.0.0/8"}
    assert step.caveat.result is Decision.CONDITIONAL
    assert step.caveat.missing_context == ("user_ip",)
