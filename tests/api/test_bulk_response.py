"""CheckBulk's response written as bytes is exactly the one built entry by entry."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from authz_service.api import bulk, convert
from authz_service.api.explain import explanation_to_proto
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from authz_service.api.status import status_proto
from authz_service.decisionlog import new_decision_ids
from authz_service.engine import CheckResult, Decision, ExplainNode
from authz_service.errors import (
    AuthzError,
    DeadlineExceeded,
    InvalidArgument,
    LimitExceeded,
    PermissionDenied,
)

NODE = ExplainNode("relation", "document:d", "viewer", Decision.ALLOWED, subject="user:u")


def explain(result: CheckResult) -> core_pb2.Explanation:
    return explanation_to_proto(result)


def built(
    results: list[CheckResult | AuthzError], ids: list[str], at: core_pb2.ConsistencyToken
) -> permissions_pb2.CheckBulkResponse:
    """The response as the servicer built it before: one message per entry."""
    response = permissions_pb2.CheckBulkResponse(checked_at=at)
    for result, decision_id in zip(results, ids, strict=True):
        entry = response.items.add()
        if isinstance(result, AuthzError):
            entry.error.CopyFrom(status_proto(result))
            continue
        entry.result.decision = convert.decision_to_proto(result.decision)
        entry.result.missing_context.extend(result.missing_context)
        entry.result.decision_id = decision_id
        if result.explanation is not None:
            entry.result.explanation.CopyFrom(explain(result))
    return response


TEXT = st.text(max_size=40)
RESULTS = st.one_of(
    st.builds(CheckResult, st.sampled_from(list(Decision))),
    st.builds(CheckResult, st.sampled_from(list(Decision))),
    st.builds(
        CheckResult,
        st.sampled_from(list(Decision)),
        st.lists(TEXT, max_size=3).map(tuple),
        st.sampled_from([None, NODE]),
    ),
    st.builds(InvalidArgument, TEXT, field=st.sampled_from(["", "items[3].resource"])),
    st.builds(LimitExceeded, TEXT),
    st.builds(DeadlineExceeded, TEXT),
    st.builds(PermissionDenied, TEXT),
)
# Real ids mostly; sometimes anything, of any length (the bytes must still be right).
IDS = st.one_of(
    st.integers(1, 30).map(lambda n: new_decision_ids(n, datetime.now(UTC))),
    st.lists(st.one_of(TEXT, st.text(min_size=26, max_size=26)), min_size=1, max_size=30),
)


@settings(max_examples=800, deadline=None)
@given(st.data(), IDS, st.text(max_size=60))
def test_the_written_response_parses_to_the_built_one(
    data: st.DataObject, ids: list[str], token: str
) -> None:
    results = data.draw(st.lists(RESULTS, min_size=len(ids), max_size=len(ids)))
    at = core_pb2.ConsistencyToken(token=token)
    written = bulk.response(results, ids, at, explain)
    expected = built(results, ids, at)
    assert written == expected
    assert written.SerializeToString() == expected.SerializeToString()
    assert written.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )
