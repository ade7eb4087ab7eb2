"""When an explanation is sent, and which one, as the proto comments say.

- A denial by a rule of the service carries its explanation whether or not
  `with_explanation` was set (it tells the caller why); the comments of
  CheckResponse.explanation and CheckBulkResult.explanation said "only when
  `with_explanation` was set".
- Check with `with_explanation` and Explain return the same tree: the steps the evaluation
  took, which stops as soon as the answer is known. The comments said Check returns "the
  decisive steps only" and Explain "every branch", as if they differed.
"""

from __future__ import annotations

import grpc

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2, tenancy_pb2
from authz_service.api.gen.authz.v1 import tenancy_pb2_grpc as tenancy_grpc
from tests.api.helpers import ALLOWED, DENIED, Api, obj, subj
from tests.api.proto_comments import comment

PB = permissions_pb2
_Node = core_pb2.ExplanationNode
FRESH = core_pb2.Consistency(fully_consistent=True)

SCHEMA = """
definition user {}
definition document {
    relation viewer: user
    relation editor: user
    permission view = viewer + editor
}
"""


def _check(subject: str, *, with_explanation: bool = False) -> PB.CheckRequest:
    return PB.CheckRequest(
        tenant="acme",
        resource=obj("document:d"),
        permission="view",
        subject=subj(subject),
        consistency=FRESH,
        with_explanation=with_explanation,
    )


def _explain(subject: str) -> PB.ExplainRequest:
    return PB.ExplainRequest(
        tenant="acme",
        resource=obj("document:d"),
        permission="view",
        subject=subj(subject),
        consistency=FRESH,
    )


async def test_a_rule_s_denial_is_explained_without_with_explanation(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    await api.touch("acme", "document:d#viewer@user:alice")
    await tenancy_grpc.TenancyServiceStub(channel).SuspendSubject(
        tenancy_pb2.SuspendSubjectRequest(tenant="acme", subject=obj("user:alice"), reason="left")
    )
    checked = await api.permissions.Check(_check("user:alice"))
    bulk = await api.permissions.CheckBulk(
        PB.CheckBulkRequest(
            tenant="acme",
            consistency=FRESH,
            items=[
                PB.CheckBulkRequestItem(
                    resource=obj("document:d"), permission="view", subject=subj("user:alice")
                )
            ],
        )
    )
    for result in (checked, bulk.items[0].result):
        assert result.decision == DENIED
        assert result.HasField("explanation")
        assert result.explanation.deny_reason == core_pb2.DENY_REASON_SUBJECT_SUSPENDED
    # A denial by the data alone is not explained unasked.
    plain = await api.permissions.Check(_check("user:bob"))
    assert plain.decision == DENIED
    assert not plain.HasField("explanation")

    for element in ("CheckResponse.explanation", "CheckBulkResult.explanation"):
        said = comment("permissions.proto", element)
        assert "only when `with_explanation` was set" not in said, element
        assert "rule" in said, element


async def test_check_with_explanation_and_explain_return_the_same_steps(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    # alice has view two ways; bob none.
    await api.touch("acme", "document:d#viewer@user:alice", "document:d#editor@user:alice")
    for subject, decision in (("user:alice", ALLOWED), ("user:bob", DENIED)):
        checked = await api.permissions.Check(_check(subject, with_explanation=True))
        explained = await api.permissions.Explain(_explain(subject))
        assert checked.decision == explained.decision == decision
        assert checked.explanation == explained.explanation
    # Evaluation stopped at the first way alice has access: Explain does not show every
    # branch (`editor` was never evaluated).
    root = (await api.permissions.Explain(_explain("user:alice"))).explanation.root
    (union,) = root.children
    assert union.kind == _Node.KIND_UNION
    assert [child.relation for child in union.children] == ["viewer"]

    said = " ".join(
        [
            comment("core.proto", "Explanation"),
            comment("permissions.proto", "PermissionsService.Explain"),
            comment("permissions.proto", "ExplainResponse.explanation"),
            comment("permissions.proto", "CheckRequest.with_explanation"),
            comment("permissions.proto", "CheckBulkRequest.with_explanation"),
        ]
    )
    for claim in ("decisive steps only", "every branch", "decisive evaluation steps"):
        assert claim not in said, claim
    assert "the same" in comment("core.proto", "Explanation")
