"""Explanations: the proof of an ALLOWED answer, the reasons of a DENIED one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from authz_service.engine import Decision, ExplainNode

from .helpers import NOW, item, setup

SCHEMA = """
use expiration
definition user {}
caveat over(x int) { x > 5 }
definition group {
    relation member: user | group#member
}
definition doc {
    relation viewer: user | group#member | user with over | user with expiration
    relation banned: user
    permission view = viewer - banned
}
"""


def nodes(node: ExplainNode) -> Iterator[ExplainNode]:
    yield node
    for child in node.children:
        yield from nodes(child)


async def test_allowed_explanation_is_the_proof() -> None:
    s = await setup(
        SCHEMA,
        [
            "doc:d#viewer@group:eng#member",
            "group:eng#member@group:core#member",
            "group:core#member@user:bob",
        ],
    )
    result = await s.engine.explain(s.snap, item("doc:d#view@user:bob"))
    root = result.explanation
    assert result.decision is Decision.ALLOWED
    assert root is not None
    assert (root.kind, root.object, root.relation, root.result) == (
        "permission",
        "doc:d",
        "view",
        Decision.ALLOWED,
    )
    proof = [n.relationship for n in nodes(root) if n.kind == "relationship"]
    assert proof == [
        "doc:d#viewer@group:eng#member",
        "group:eng#member@group:core#member",
        "group:core#member@user:bob",
    ]
    assert all(n.result is Decision.ALLOWED for n in nodes(root) if n.kind == "relationship")


async def test_denied_explanations_say_why() -> None:
    past = (NOW - timedelta(days=1)).isoformat()
    s = await setup(
        SCHEMA,
        [
            "doc:d#viewer@user:eve",
            "doc:d#banned@user:eve",
            'doc:d#viewer@user:low[over:{"x": 1}]',
            f"doc:d#viewer@user:old[expiration:{past}]",
        ],
    )
    reasons = {}
    for who in ("eve", "low", "old", "nobody"):
        result = await s.check(f"doc:d#view@user:{who}", explain=True)
        assert result.decision is Decision.DENIED
        assert result.explanation is not None
        reasons[who] = [n.reason for n in nodes(result.explanation) if n.reason]
    assert "excluded by `banned`" in reasons["eve"]
    assert "caveat `over` is false" in reasons["low"]
    assert any(r.startswith("expired at") for r in reasons["old"])
    assert "no relationship `doc:d#viewer` for `user:nobody`" in reasons["nobody"]


async def test_conditional_explanation_names_missing_parameters() -> None:
    s = await setup(SCHEMA, ["doc:d#viewer@user:ann[over]"])
    result = await s.check("doc:d#view@user:ann", explain=True)
    assert result.decision is Decision.CONDITIONAL
    assert result.explanation is not None
    leaves = [n for n in nodes(result.explanation) if n.kind == "relationship"]
    assert [(n.caveat, n.reason, n.result) for n in leaves] == [
        ("over", "caveat `over` needs `x`", Decision.CONDITIONAL)
    ]


async def test_plain_check_builds_no_explanation() -> None:
    s = await setup(SCHEMA, ["doc:d#viewer@user:ann"])
    assert (await s.check("doc:d#view@user:ann")).explanation is None
