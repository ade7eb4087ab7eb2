"""Cursors of ListRoles, ListBindings and GrantReach over gRPC: later pages read the first
page's snapshot, and a cursor works only for its tenant, request and method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, tenancy_pb2
from authz_service.model import SubjectRef
from authz_service.tenancy.encoding import binding_id
from tests.api.cursor_helpers import cursor_refused, refused, rehashed, tampered
from tests.api.helpers import Api, rel
from tests.tenancy.helpers import SCHEMA, binding_msg, role_msg, tenancy_stub

_PB = tenancy_pb2


@dataclass
class World:
    api: Api
    tenancy: Any

    async def role(self, tenant: str, name: str) -> None:
        await self.tenancy.CreateRole(
            _PB.CreateRoleRequest(tenant=tenant, role=role_msg(name, ["invoice.view"]))
        )

    async def bind(self, tenant: str, user: str) -> str:
        reply = await self.tenancy.CreateBinding(
            _PB.CreateBindingRequest(tenant=tenant, binding=binding_msg("auditor", user))
        )
        ident: str = reply.binding.binding_id
        return ident


@pytest.fixture
async def world(channel: grpc.aio.Channel) -> World:
    api = Api(channel)
    await api.write_schema(SCHEMA)
    return World(api, tenancy_stub(channel))


@dataclass(frozen=True)
class Listing:
    name: str
    request: Callable[..., Any]  # (tenant, other_filter=False, **fields) -> request
    call: Callable[[World, Any], Awaitable[Any]]
    keys: Callable[[Any], list[str]]  # the keys of one page
    seed: Callable[[World, str], Awaitable[list[str]]]  # -> every key, in order
    change: Callable[[World, str, list[str]], Awaitable[None]]  # given the keys, page 1 of 3


async def _seed_roles(w: World, tenant: str) -> list[str]:
    for i in range(1, 7):
        await w.role(tenant, f"r{i}")
    return ["auditor", *(f"r{i}" for i in range(1, 7))]


async def _change_roles(w: World, tenant: str, keys: list[str]) -> None:
    for name in ("a0", "r2a"):  # before the cursor's key (r2), and just after it
        await w.role(tenant, name)
    await w.tenancy.DeleteRole(_PB.DeleteRoleRequest(tenant=tenant, name="r4"))


async def _seed_bindings(w: World, tenant: str) -> list[str]:
    return sorted([await w.bind(tenant, f"user:u{i}") for i in range(1, 7)])


async def _change_bindings(w: World, tenant: str, keys: list[str]) -> None:
    # Ids are digests: pick new subjects whose ids fall before and after the cursor's.
    ids = {n: binding_id(tenant, "auditor", SubjectRef("user", n), None) for n in _NAMES}
    before = next(n for n, i in ids.items() if i < keys[2])
    after = next(n for n, i in ids.items() if keys[2] < i < keys[3])
    for name in (before, after):
        await w.bind(tenant, f"user:{name}")
    await w.tenancy.DeleteBinding(_PB.DeleteBindingRequest(tenant=tenant, binding_id=keys[4]))


_NAMES = [f"n{i}" for i in range(200)]


async def _seed_reach(w: World, tenant: str) -> list[str]:
    await w.api.touch(tenant, *(f"invoice:i{i}#folder@folder:f" for i in range(1, 7)))
    return ["folder:f", *(f"invoice:i{i}" for i in range(1, 7))]


async def _change_reach(w: World, tenant: str, keys: list[str]) -> None:
    await w.api.touch(tenant, "invoice:i0#folder@folder:f", "invoice:i2a#folder@folder:f")
    await w.api.delete(tenant, "invoice:i4#folder@folder:f")


LISTINGS = [
    Listing(
        "ListRoles",
        lambda tenant, other_filter=False, **kw: _PB.ListRolesRequest(tenant=tenant, **kw),
        lambda w, r: w.tenancy.ListRoles(r),
        lambda page: [r.name for r in page.roles],
        _seed_roles,
        _change_roles,
    ),
    Listing(
        "ListBindings",
        lambda tenant, other_filter=False, **kw: _PB.ListBindingsRequest(
            tenant=tenant, role="billing" if other_filter else "auditor", **kw
        ),
        lambda w, r: w.tenancy.ListBindings(r),
        lambda page: [b.binding_id for b in page.bindings],
        _seed_bindings,
        _change_bindings,
    ),
    Listing(
        "GrantReach",
        lambda tenant, other_filter=False, **kw: _PB.GrantReachRequest(
            tenant=tenant,
            relationship=rel(f"folder:{'g' if other_filter else 'f'}#viewer@user:x"),
            **kw,
        ),
        lambda w, r: w.tenancy.GrantReach(r),
        lambda page: [f"{r.resource.object_type}:{r.resource.object_id}" for r in page.resources],
        _seed_reach,
        _change_reach,
    ),
]
_FULL = core_pb2.Consistency(fully_consistent=True)


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.name)
async def test_later_pages_read_the_first_pages_snapshot(world: World, listing: Listing) -> None:
    keys = await listing.seed(world, "acme")
    first = await listing.call(world, listing.request("acme", limit=3))
    assert listing.keys(first) == keys[:3]

    await listing.change(world, "acme", keys)
    now = await listing.call(world, listing.request("acme", consistency=_FULL))
    assert len(listing.keys(now)) == len(keys) + 1  # the writes happened: 2 in, 1 out

    rest = await listing.call(world, listing.request("acme", cursor=first.next_cursor))
    assert listing.keys(first) + listing.keys(rest) == keys
    assert not rest.HasField("next_cursor")
    assert rest.read_at.token == first.read_at.token
    two = await listing.call(world, listing.request("acme", limit=2, cursor=first.next_cursor))
    assert listing.keys(two) == keys[3:5]
    last = await listing.call(world, listing.request("acme", cursor=two.next_cursor))
    assert listing.keys(last) == keys[5:]


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.name)
async def test_a_cursor_works_only_where_it_was_issued(world: World, listing: Listing) -> None:
    keys = await listing.seed(world, "acme")
    await listing.seed(world, "globex")
    first = await listing.call(world, listing.request("acme", limit=2))
    cursor = first.next_cursor

    await cursor_refused(
        listing.call(world, listing.request("globex", cursor=cursor)), "another tenant"
    )
    if listing.name != "ListRoles":  # ListRoles has no filter
        await cursor_refused(
            listing.call(world, listing.request("acme", other_filter=True, cursor=cursor)),
            "another request",
        )
    for other in LISTINGS:
        if other is not listing:
            await cursor_refused(
                other.call(world, other.request("acme", cursor=cursor)), listing.name
            )
    for token in tampered(cursor.token):
        await cursor_refused(
            listing.call(world, listing.request("acme", cursor=core_pb2.Cursor(token=token))),
            "not a cursor this service issued",
        )
    rest = await listing.call(world, listing.request("acme", cursor=cursor, consistency=_FULL))
    assert listing.keys(first) + listing.keys(rest) == keys


@pytest.mark.parametrize("revision", [2**31, 2**64])
@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.name)
async def test_a_cursor_past_the_head_is_a_failed_precondition(
    world: World, listing: Listing, revision: int
) -> None:
    """Past 32 bits, a cursor's revision once reached the database as an int4 parameter."""
    await listing.seed(world, "acme")
    first = await listing.call(world, listing.request("acme", limit=2))
    cursor = rehashed(first.next_cursor, at=revision)
    err = await refused(listing.call(world, listing.request("acme", cursor=cursor)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    assert f"`{revision}`" in (err.details() or "")


_PREFIX_TYPES = """
definition user {}
definition folder {
    relation viewer: user
    permission view = viewer
}
definition doc {
    relation folder: folder
    permission view = folder->view
}
definition doc2 {
    relation folder: folder
    permission view = folder->view
}
definition doc/abc {
    relation folder: folder
    permission view = folder->view
}
"""


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_grant_reach_pages_add_up_when_a_type_name_prefixes_another(
    channel: grpc.aio.Channel, limit: int
) -> None:
    """Resources are ordered by (type, id); `doc:…` comes before `doc2:…` and `doc/abc:…`
    although `doc:` sorts after both as text, so paging must resume in the same order."""
    api = Api(channel)
    await api.write_schema(_PREFIX_TYPES)
    docs = ("doc:a", "doc:b/1", "doc2:a", "doc2:b", "doc/abc:a", "doc/abc:z")
    await api.touch("acme", *(f"{d}#folder@folder:f" for d in docs))
    tenancy = tenancy_stub(channel)

    def request(**kw: Any) -> tenancy_pb2.GrantReachRequest:
        return _PB.GrantReachRequest(
            tenant="acme", relationship=rel("folder:f#viewer@user:x"), **kw
        )

    whole = await tenancy.GrantReach(request())
    everything = [f"{r.resource.object_type}:{r.resource.object_id}" for r in whole.resources]
    assert sorted(everything) == sorted([*docs, "folder:f"])
    assert whole.resource_count == len(everything)

    seen: list[str] = []
    reply = await tenancy.GrantReach(request(limit=limit))
    while True:
        assert reply.resource_count == len(everything)
        seen += [f"{r.resource.object_type}:{r.resource.object_id}" for r in reply.resources]
        if not reply.HasField("next_cursor"):
            break
        reply = await tenancy.GrantReach(request(limit=limit, cursor=reply.next_cursor))
    assert seen == everything
