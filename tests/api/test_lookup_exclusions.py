"""LookupSubjects over gRPC: a wildcard result names its exclusions with their decisions
(`excluded_subjects`), and the older `excluded_subject_ids` lists the same ids."""

from __future__ import annotations

import grpc

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from tests.api.helpers import ALLOWED, CONDITIONAL, DENIED, Api, obj

SCHEMA = """
definition user {}
caveat cav(n int) { n < 3 }
definition document {
    relation owner: user:*
    relation banned: user with cav | user
    permission delete = owner - banned
}
"""


async def test_a_wildcard_result_carries_each_exclusion_with_its_decision(
    channel: grpc.aio.Channel,
) -> None:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    token = await api.touch(
        "acme",
        "document:d#owner@user:*",
        "document:d#banned@user:u3[cav]",
        "document:d#banned@user:u5",
    )
    request = permissions_pb2.LookupSubjectsRequest(
        tenant="acme",
        resource=obj("document:d"),
        permission="delete",
        subject_type="user",
        consistency=core_pb2.Consistency(at_least_as_fresh=core_pb2.ConsistencyToken(token=token)),
    )
    found = [r async for r in api.permissions.LookupSubjects(request)]
    assert [(r.subject_id, r.decision) for r in found] == [("*", ALLOWED)]
    wildcard = found[0]
    assert list(wildcard.excluded_subject_ids) == ["u3", "u5"]
    assert [
        (e.subject_id, e.decision, list(e.missing_context)) for e in wildcard.excluded_subjects
    ] == [("u3", CONDITIONAL, ["n"]), ("u5", DENIED, [])]
