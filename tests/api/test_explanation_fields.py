"""ExplanationNode's text fields hold what core.proto says they hold: `relation` a relation
or permission name, `expression` the schema expression an operator step evaluated, and
`reason` why a step is not allowed. (They were once mixed up: the expression text was sent
in `relation` and the reason in `expression`.)"""

from __future__ import annotations

import grpc

from authz_service.api.explain import explanation_to_proto
from authz_service.api.gen.authz.v1 import core_pb2
from authz_service.engine import CheckResult, Decision, ExplainNode
from tests.api.helpers import Api

_Node = core_pb2.ExplanationNode
_OPERATORS = {
    _Node.KIND_UNION,
    _Node.KIND_INTERSECTION,
    _Node.KIND_EXCLUSION,
    _Node.KIND_ARROW,
    _Node.KIND_ARROW_ALL,
    _Node.KIND_NIL,
}

SCHEMA = """
definition user {}
definition folder {
    relation viewer: user
    permission view = viewer
}
definition document {
    relation parent: folder
    relation viewer: user
    relation banned: user
    permission view = (viewer + parent->view) - banned
    permission nothing = nil
}
"""
NAMES = {"viewer", "view", "parent", "banned", "nothing"}


def _nodes(node: _Node) -> list[_Node]:
    return [node, *(n for child in node.children for n in _nodes(child))]


async def _explain(api: Api, resource: str, permission: str, subject: str) -> _Node:
    return (await api.explain("acme", resource, permission, subject)).explanation.root


async def test_relation_names_expression_holds_the_expression_and_reason_says_why(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    await api.touch(
        "acme",
        "document:d#parent@folder:f",
        "folder:f#viewer@user:alice",
        "folder:f#viewer@user:bob",
        "document:d#banned@user:bob",
    )
    alice = _nodes(await _explain(api, "document:d", "view", "user:alice"))
    bob = _nodes(await _explain(api, "document:d", "view", "user:bob"))
    nothing = _nodes(await _explain(api, "document:d", "nothing", "user:alice"))
    nodes = alice + bob + nothing
    for node in nodes:
        if node.kind in _OPERATORS:
            assert node.relation == "", node
            assert node.expression, node
        else:
            assert node.expression == "", node
            assert node.relation in NAMES, node
    expressions = {node.expression for node in nodes if node.kind in _OPERATORS}
    assert {"(viewer + parent->view) - banned", "viewer + parent->view", "parent->view"} <= (
        expressions
    )
    assert "nil" in expressions

    # alice has no direct `viewer` on the document: that step says so in `reason`.
    direct = [n for n in alice if n.kind == _Node.KIND_RELATION and n.object.object_id == "d"]
    assert [n.relation for n in direct] == ["viewer", "banned"]
    assert all(n.reason.startswith("no relationship `document:d#") for n in direct)
    # bob is excluded: the exclusion step says by what.
    (exclusion,) = [n for n in bob if n.kind == _Node.KIND_EXCLUSION]
    assert exclusion.result == core_pb2.DECISION_DENIED
    assert exclusion.reason == "excluded by `banned`"
    assert exclusion.expression == "(viewer + parent->view) - banned"
    # An allowed operator step has nothing to excuse.
    assert all(n.reason == "" for n in alice if n.kind in _OPERATORS)


def test_a_relationship_that_does_not_parse_is_quoted_in_the_reason() -> None:
    """Only a recorded explanation (an old decision log entry) can hold one."""
    node = ExplainNode(
        kind="relationship",
        object="document:d",
        relation="viewer",
        result=Decision.DENIED,
        relationship="not a relationship",
        reason="expired at 2020-01-01T00:00:00+00:00",
    )
    sent = explanation_to_proto(CheckResult(Decision.DENIED, explanation=node)).root
    assert sent.expression == ""
    assert sent.reason == "expired at 2020-01-01T00:00:00+00:00 not a relationship"
    assert sent.relation == "viewer"
    assert not sent.HasField("relationship")
