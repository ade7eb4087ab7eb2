"""The `limit` of every bounded listing is what its proto comment says: the maximum is
accepted, one more is INVALID_ARGUMENT naming `limit`; and an object type ending in `_`
is refused, as core.proto's type rules say."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    keys_pb2,
    keys_pb2_grpc,
    permissions_pb2,
    service_accounts_pb2,
    service_accounts_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
    tenants_pb2,
)
from tests.api.helpers import Api, bad_request_fields, obj, rel, subj

T = "acme"


def _tenancy(channel: grpc.aio.Channel) -> tenancy_pb2_grpc.TenancyServiceStub:
    return tenancy_pb2_grpc.TenancyServiceStub(channel)


# (name, maximum, call(channel, api, limit)): a unary call, or a stream read to its end.
Listing = tuple[str, int, Callable[[grpc.aio.Channel, Api, int], Any]]
LISTINGS: list[Listing] = [
    (
        "ListTenants",
        1000,
        lambda ch, api, n: api.tenants.ListTenants(tenants_pb2.ListTenantsRequest(limit=n)),
    ),
    (
        "ListRoles",
        1000,
        lambda ch, api, n: _tenancy(ch).ListRoles(tenancy_pb2.ListRolesRequest(tenant=T, limit=n)),
    ),
    (
        "ListBindings",
        1000,
        lambda ch, api, n: _tenancy(ch).ListBindings(
            tenancy_pb2.ListBindingsRequest(tenant=T, limit=n)
        ),
    ),
    (
        "GrantReach",
        1000,
        lambda ch, api, n: _tenancy(ch).GrantReach(
            tenancy_pb2.GrantReachRequest(
                tenant=T, relationship=rel("document:d#viewer@user:a"), limit=n
            )
        ),
    ),
    (
        "ListKeys",
        1000,
        lambda ch, api, n: keys_pb2_grpc.KeysServiceStub(ch).ListKeys(
            keys_pb2.ListKeysRequest(tenant=T, limit=n)
        ),
    ),
    (
        "ListServiceAccounts",
        1000,
        lambda ch, api, n: service_accounts_pb2_grpc.ServiceAccountsServiceStub(
            ch
        ).ListServiceAccounts(service_accounts_pb2.ListServiceAccountsRequest(tenant=T, limit=n)),
    ),
    (
        "LookupResources",
        10_000,
        lambda ch, api, n: api.permissions.LookupResources(
            permissions_pb2.LookupResourcesRequest(
                tenant=T,
                resource_type="document",
                permission="view",
                subject=subj("user:a"),
                limit=n,
            )
        ),
    ),
    (
        "LookupSubjects",
        10_000,
        lambda ch, api, n: api.permissions.LookupSubjects(
            permissions_pb2.LookupSubjectsRequest(
                tenant=T,
                resource=obj("document:d"),
                permission="view",
                subject_type="user",
                limit=n,
            )
        ),
    ),
]


async def _finish(call: Any) -> None:
    if isinstance(call, grpc.aio.UnaryStreamCall):
        async for _ in call:
            pass
    else:
        await call


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    await client.touch(T, "document:d#viewer@user:a")
    return client


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x[0])
async def test_the_largest_limit_is_accepted_and_one_more_refused(
    channel: grpc.aio.Channel, api: Api, listing: Listing
) -> None:
    _, maximum, call = listing
    await _finish(call(channel, api, maximum))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _finish(call(channel, api, maximum + 1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in bad_request_fields(caught.value), caught.value.details()


async def test_an_object_type_ending_in_an_underscore_is_refused(api: Api) -> None:
    request = permissions_pb2.CheckRequest(
        tenant=T,
        resource=core_pb2.ObjectReference(object_type="document_", object_id="d"),
        permission="view",
        subject=subj("user:a"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.permissions.Check(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not ending in `_`" in (caught.value.details() or "")
