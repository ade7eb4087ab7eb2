"""WriteSchema against stored data and tokens: the orphan check sees caveats, expirations
and wildcards, and the write's `written_at` token is a schema position, not a revision."""

from __future__ import annotations

import grpc
import pytest

from authz_service.api.gen.authz.v1 import (
    relationships_pb2,
    schema_pb2,
    tenancy_pb2,
    tenancy_pb2_grpc,
)
from tests.api.helpers import DENIED, Api
from tests.tenancy.helpers import role_msg

BASE = """
use expiration
definition user {}
caveat cav(n int) { n < 3 }
definition document {
    relation viewer: %s
    permission view = viewer
}
"""


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    return Api(channel)


async def _refused(api: Api, text: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.write_schema(text)
    return err.value


@pytest.mark.parametrize(
    ("before", "stored", "after", "named"),
    [
        ("user with cav", "document:d#viewer@user:a[cav]", "user", "user with cav"),
        (
            "user with expiration",
            "document:d#viewer@user:a[expiration:2999-01-01T00:00:00Z]",
            "user",
            "user with expiration",
        ),
        ("user | user:*", "document:d#viewer@user:*", "user", "user:*"),
        ("user:*", "document:d#viewer@user:*", "user", "user:*"),
    ],
)
async def test_a_change_of_allowed_subject_traits_that_orphans_data_is_refused(
    api: Api, before: str, stored: str, after: str, named: str
) -> None:
    await api.write_schema(BASE % before)
    await api.touch("acme", stored)
    err = await _refused(api, BASE % after)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"subject type `{named}` is no longer allowed on `document#viewer`" in (
        err.details() or ""
    )
    assert await api.write_schema(BASE % after, force=True)


async def test_a_change_that_keeps_the_stored_traits_is_accepted(api: Api) -> None:
    await api.write_schema(BASE % "user with cav | user:*")
    await api.touch("acme", "document:d#viewer@user:a[cav]", "document:d#viewer@user:*")
    assert await api.write_schema(BASE % "user:* | user with cav and expiration | user with cav")


async def test_a_schema_token_names_no_revision(api: Api) -> None:
    await api.write_schema(BASE % "user")
    reply = await api.schema.WriteSchema(schema_pb2.WriteSchemaRequest(schema=BASE % "user"))
    token = reply.written_at.token
    assert (await api.check("acme", "document:d", "view", "user:a", fresh=token)).decision == (
        DENIED
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.check("acme", "document:d", "view", "user:a", exact=token)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "names no revision" in (err.value.details() or "")
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after=reply.written_at)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await anext(aiter(watch))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_forced_change_lists_what_it_orphaned(api: Api) -> None:
    await api.write_schema(BASE % "user with cav | user:*")
    await api.touch("acme", "document:d#viewer@user:a[cav]", "document:d#viewer@user:*")
    await api.touch("globex", "document:e#viewer@user:*")
    forced = await api.schema.WriteSchema(
        schema_pb2.WriteSchemaRequest(schema=BASE % "user:*", force=True)
    )
    assert list(forced.orphaned) == ["document#viewer@user with cav"]
    # Orphaned relationships stay stored: a schema that allows them again orphans nothing.
    restored = await api.schema.WriteSchema(
        schema_pb2.WriteSchemaRequest(schema=BASE % "user:* | user with cav")
    )
    assert list(restored.orphaned) == []


async def test_a_change_that_drops_a_permission_a_custom_role_grants_is_refused(
    api: Api, channel: grpc.aio.Channel
) -> None:
    """schema.proto: custom roles naming a permission the new schema no longer declares
    are orphaned data too."""
    tenancy = tenancy_pb2_grpc.TenancyServiceStub(channel)
    await api.write_schema(BASE % "user")
    await tenancy.CreateRole(
        tenancy_pb2.CreateRoleRequest(tenant="acme", role=role_msg("reader", ["document.view"]))
    )
    without_view = BASE.replace("    permission view = viewer\n", "") % "user"
    err = await _refused(api, without_view)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "role `reader` of tenant `acme` grants `document.view`" in (err.details() or "")
    # A relation of the same name keeps the grant meaningful; force accepts anything.
    assert await api.write_schema(without_view.replace("relation viewer", "relation view"))
    assert await api.write_schema(without_view, force=True)
