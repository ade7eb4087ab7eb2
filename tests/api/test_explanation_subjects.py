"""ExplanationNode.subject is set where core.proto says: on the root of every explanation
(the checked subject), on the actor's step under KIND_IMPERSONATION, and on each member
under KIND_DELEGATION. (Only the delegation members had it.)"""

from __future__ import annotations

import grpc

from authz_service.api.audit_convert import record_to_proto
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2, tenancy_pb2
from authz_service.api.gen.authz.v1 import tenancy_pb2_grpc as tenancy_grpc
from authz_service.decisionlog import ChainHead, Decision, LogEntry
from tests.api.helpers import ALLOWED, DENIED, Api, obj, subj
from tests.decisionlog.helpers import make_record

PB = permissions_pb2
_Node = core_pb2.ExplanationNode

SCHEMA = """
definition user {
    relation support: user
    permission impersonate = support
}
definition document {
    relation viewer: user
    permission view = viewer
}
"""
FRESH = core_pb2.Consistency(fully_consistent=True)


def _who(node: _Node) -> str:
    """The node's subject as text, empty when unset."""
    if not node.HasField("subject"):
        return ""
    ref = node.subject.object
    return f"{ref.object_type}:{ref.object_id}"


def _explain(subject: str, actor: str = "") -> PB.ExplainRequest:
    request = PB.ExplainRequest(
        tenant="acme",
        resource=obj("document:d"),
        permission="view",
        subject=subj(subject),
        consistency=FRESH,
    )
    if actor:
        request.actor.CopyFrom(subj(actor))
        request.reason = "ticket 42"
    return request


async def _world(channel: grpc.aio.Channel) -> Api:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    await api.touch("acme", "document:d#viewer@user:alice", "user:alice#support@user:sam")
    return api


async def test_the_root_names_the_checked_subject(channel: grpc.aio.Channel) -> None:
    api = await _world(channel)
    explained = await api.permissions.Explain(_explain("user:alice"))
    assert explained.decision == ALLOWED
    assert _who(explained.explanation.root) == "user:alice"

    checked = await api.permissions.Check(
        PB.CheckRequest(
            tenant="acme",
            resource=obj("document:d"),
            permission="view",
            subject=subj("user:bob"),
            consistency=FRESH,
            with_explanation=True,
        )
    )
    assert checked.decision == DENIED
    assert _who(checked.explanation.root) == "user:bob"

    bulk = await api.permissions.CheckBulk(
        PB.CheckBulkRequest(
            tenant="acme",
            consistency=FRESH,
            items=[
                PB.CheckBulkRequestItem(
                    resource=obj("document:d"), permission="view", subject=subj(who)
                )
                for who in ("user:alice", "user:bob")
            ],
            with_explanation=True,
        )
    )
    assert [_who(item.result.explanation.root) for item in bulk.items] == [
        "user:alice",
        "user:bob",
    ]


async def test_a_rule_s_denial_names_the_subject_without_an_explanation_asked(
    channel: grpc.aio.Channel,
) -> None:
    api = await _world(channel)
    await tenancy_grpc.TenancyServiceStub(channel).SuspendSubject(
        tenancy_pb2.SuspendSubjectRequest(tenant="acme", subject=obj("user:alice"), reason="left")
    )
    checked = await api.permissions.Check(
        PB.CheckRequest(
            tenant="acme",
            resource=obj("document:d"),
            permission="view",
            subject=subj("user:alice"),
            consistency=FRESH,
        )
    )
    assert checked.decision == DENIED
    assert checked.explanation.deny_reason == core_pb2.DENY_REASON_SUBJECT_SUSPENDED
    assert _who(checked.explanation.root) == "user:alice"


async def test_under_impersonation_the_actor_s_step_names_the_actor(
    channel: grpc.aio.Channel,
) -> None:
    api = await _world(channel)
    allowed = (await api.permissions.Explain(_explain("user:alice", "user:sam"))).explanation
    root = allowed.root
    assert root.kind == _Node.KIND_IMPERSONATION
    assert root.result == ALLOWED
    assert _who(root) == "user:alice"
    subject_step, actor_step = root.children
    assert (subject_step.relation, _who(subject_step)) == ("view", "")  # alice's, as the root
    assert (actor_step.relation, _who(actor_step)) == ("impersonate", "user:sam")
    assert actor_step.object == obj("user:alice")

    # eve may not impersonate alice: the refusal shows eve's step, for eve.
    refused = (await api.permissions.Explain(_explain("user:alice", "user:eve"))).explanation
    assert refused.deny_reason == core_pb2.DENY_REASON_IMPERSONATION_NOT_ALLOWED
    assert _who(refused.root) == "user:alice"
    (actor_step,) = refused.root.children
    assert (actor_step.relation, _who(actor_step)) == ("impersonate", "user:eve")


def test_a_recorded_tree_without_it_gets_the_record_s_subject() -> None:
    """Decisions logged before the root carried the subject are sent with it as well."""
    tree = {"kind": "permission", "object": "document:d", "relation": "view", "result": "DENIED"}
    record = make_record(subject="user:alice", decision=Decision.DENIED, explanation=tree)
    sent = record_to_proto(LogEntry.link(record, ChainHead()))
    assert _who(sent.explanation.root) == "user:alice"
