"""CaveatEvaluation carries what core.proto documents: the caveat's name, the context stored
with the relationship, the caveat's own result and, when CONDITIONAL, the parameters it
missed. (Only `name` was sent; and a caveat that held on a relationship whose subject set
then failed was reported as false.)"""

from __future__ import annotations

import json
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from authz_service.api.explain import explanation_to_proto
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from authz_service.engine import CheckResult, Decision, ExplainNode
from authz_service.service.reasons import node_from_json, node_to_json
from tests.api.helpers import ALLOWED, CONDITIONAL, DENIED, Api

_Node = core_pb2.ExplanationNode

SCHEMA = """
definition user {}
definition group {
    relation member: user
}
caveat ip_allowlist(user_ip ipaddress, cidr string) {
    user_ip.in_cidr(cidr)
}
definition document {
    relation viewer: user with ip_allowlist | group#member with ip_allowlist
    permission view = viewer
}
"""
STORED = {"cidr": "10.0.0.0/8"}


def _relationships(node: _Node) -> list[_Node]:
    own = [node] if node.kind == _Node.KIND_RELATIONSHIP else []
    return own + [n for child in node.children for n in _relationships(child)]


async def _explain(
    api: Api, resource: str, context: dict[str, Any] | None = None
) -> permissions_pb2.ExplainResponse:
    return await api.explain("acme", resource, "view", "user:dave", context=context)


async def test_a_caveat_s_context_result_and_missing_parameters_are_sent(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    await api.touch("acme", 'document:d#viewer@user:dave[ip_allowlist:{"cidr":"10.0.0.0/8"}]')

    missing = await _explain(api, "document:d")
    assert missing.decision == CONDITIONAL
    (step,) = _relationships(missing.explanation.root)
    assert step.caveat.name == "ip_allowlist"
    assert MessageToDict(step.caveat.context) == STORED
    assert step.caveat.result == CONDITIONAL
    assert list(step.caveat.missing_context) == ["user_ip"]
    assert step.reason == "caveat `ip_allowlist` needs `user_ip`"

    inside = await _explain(api, "document:d", {"user_ip": "10.1.2.3"})
    assert inside.decision == ALLOWED
    (step,) = _relationships(inside.explanation.root)
    assert (step.caveat.result, list(step.caveat.missing_context)) == (ALLOWED, [])
    assert MessageToDict(step.caveat.context) == STORED  # the request's is not repeated

    outside = await _explain(api, "document:d", {"user_ip": "192.168.0.1"})
    assert outside.decision == DENIED
    assert outside.explanation.deny_reason == core_pb2.DENY_REASON_CAVEAT_FALSE
    (step,) = _relationships(outside.explanation.root)
    assert (step.caveat.result, step.reason) == (DENIED, "caveat `ip_allowlist` is false")


async def test_a_caveat_that_held_is_not_reported_false_when_the_subject_set_failed(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    await api.touch(
        "acme", 'document:e#viewer@group:eng#member[ip_allowlist:{"cidr":"10.0.0.0/8"}]'
    )
    denied = await _explain(api, "document:e", {"user_ip": "10.1.2.3"})
    assert denied.decision == DENIED
    # dave is not in eng: no grant, although the one relationship found is caveated.
    assert denied.explanation.deny_reason == core_pb2.DENY_REASON_NO_GRANT
    (step,) = _relationships(denied.explanation.root)
    assert step.result == DENIED
    assert step.caveat.result == ALLOWED
    assert "is false" not in step.reason


async def test_an_expired_caveated_relationship_is_no_grant_not_a_false_caveat(
    channel: grpc.aio.Channel,
) -> None:
    """Its caveat was never evaluated: the relationship had ended. The reason said the
    caveat was false, which would send an admin looking at the wrong thing."""
    api = Api(channel)
    await api.write_schema(
        "use expiration\n"
        + SCHEMA.replace("user with ip_allowlist |", "user with ip_allowlist and expiration |")
    )
    await api.touch(
        "acme",
        'document:f#viewer@user:dave[ip_allowlist:{"cidr":"10.0.0.0/8"}]'
        "[expiration:2001-01-01T00:00:00Z]",
    )
    denied = await _explain(api, "document:f", {"user_ip": "10.1.2.3"})
    assert denied.decision == DENIED
    assert denied.explanation.deny_reason == core_pb2.DENY_REASON_NO_GRANT
    (step,) = _relationships(denied.explanation.root)
    assert step.reason.startswith("expired at")


def test_the_caveat_s_outcome_survives_the_decision_log() -> None:
    """The audit API sends a logged decision's tree from its recorded JSON."""
    held = ExplainNode(
        kind="relationship",
        object="document:d",
        relation="viewer",
        result=Decision.CONDITIONAL,
        relationship='document:d#viewer@user:dave[ip_allowlist:{"cidr":"10.0.0.0/8"}]',
        caveat="ip_allowlist",
        caveat_result=Decision.CONDITIONAL,
        caveat_missing=("user_ip",),
    )
    recorded = node_from_json(json.loads(json.dumps(node_to_json(held))))
    assert recorded == held
    sent = explanation_to_proto(CheckResult(Decision.CONDITIONAL, explanation=recorded)).root
    assert (sent.caveat.result, list(sent.caveat.missing_context)) == (CONDITIONAL, ["user_ip"])
    assert MessageToDict(sent.caveat.context) == STORED
