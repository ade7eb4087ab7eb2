"""A contextual relationship the schema refuses is INVALID_ARGUMENT naming its place in
the request, `contextual_relationships[i]`, in every call that takes them. The field was
once `contextual`, a field no request has, without the index."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
from tests.api.helpers import Api, bad_request_fields, obj, rel, subj

SCHEMA = """
use expiration
definition user {}
caveat flag(b bool) { b }
definition document {
    relation viewer: user | user with flag
    relation reader: user with expiration
    permission view = viewer + reader
}
"""

GOOD = "document:d1#reader@user:ok[expiration:2030-01-01T00:00:00Z]"

Call = Callable[[Api, list[core_pb2.Relationship]], Awaitable[Any]]


def _check(api: Api, contextual: list[core_pb2.Relationship]) -> Awaitable[Any]:
    return api.permissions.Check(
        permissions_pb2.CheckRequest(
            tenant="acme",
            resource=obj("document:d1"),
            permission="view",
            subject=subj("user:a"),
            contextual_relationships=contextual,
        )
    )


def _check_bulk(api: Api, contextual: list[core_pb2.Relationship]) -> Awaitable[Any]:
    item = permissions_pb2.CheckBulkRequestItem(
        resource=obj("document:d1"), permission="view", subject=subj("user:a")
    )
    return api.permissions.CheckBulk(
        permissions_pb2.CheckBulkRequest(
            tenant="acme", items=[item, item], contextual_relationships=contextual
        )
    )


def _list_permissions(api: Api, contextual: list[core_pb2.Relationship]) -> Awaitable[Any]:
    return api.permissions.ListPermissions(
        permissions_pb2.ListPermissionsRequest(
            tenant="acme",
            resource=obj("document:d1"),
            subject=subj("user:a"),
            contextual_relationships=contextual,
        )
    )


def _explain(api: Api, contextual: list[core_pb2.Relationship]) -> Awaitable[Any]:
    return api.permissions.Explain(
        permissions_pb2.ExplainRequest(
            tenant="acme",
            resource=obj("document:d1"),
            permission="view",
            subject=subj("user:a"),
            contextual_relationships=contextual,
        )
    )


CALLS = {
    "Check": _check,
    "CheckBulk": _check_bulk,
    "ListPermissions": _list_permissions,
    "Explain": _explain,
}


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema(SCHEMA)
    return client


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("document:d1#nosuch@user:a", "unknown relation `nosuch`"),
        ("document:d1#view@user:a", "`view` is a permission"),
        ("nosuch:d1#viewer@user:a", "unknown definition `nosuch`"),
        ("document:d1#viewer@nosuch:a", "unknown definition `nosuch`"),
        ("document:d1#viewer@document:x", "subject `document:x` is not allowed"),
        ("document:d1#viewer@user:a[expiration:2030-01-01T00:00:00Z]", "is not allowed"),
        ("document:d1#viewer@user:a[ghost]", "is not allowed"),
        ('document:d1#viewer@user:a[flag:{"c": true}]', "has no parameter `c`"),
    ],
)
async def test_a_refused_contextual_relationship_is_named_by_its_index(
    api: Api, bad: str, needle: str
) -> None:
    for name, call in CALLS.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(api, [rel(GOOD), rel(bad)])
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert needle in (caught.value.details() or ""), name
        assert bad_request_fields(caught.value) == ["contextual_relationships[1]"], name
