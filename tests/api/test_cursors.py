"""Cursors of ReadRelationships, LookupResources and LookupSubjects over gRPC.

A cursor pins the snapshot of the first page: writes between pages (an insert before
the cursor's key, one after it, the delete of an item not yet seen) change nothing in
the pages that follow. A cursor works only for the tenant, the request (apart from
`limit` and `consistency`) and the method it came from; anything else, or an altered
cursor, is INVALID_ARGUMENT on `cursor`; a cursor whose revision has been collected is
FAILED_PRECONDITION.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authz_service.api.cursors import CursorScope
from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2, relationships_pb2
from tests.api.conftest import server_settings, start_app
from tests.api.cursor_helpers import collect, cursor_refused, refused, rehashed, tampered
from tests.api.helpers import Api, obj, subj

_FULL = core_pb2.Consistency(fully_consistent=True)


@dataclass(frozen=True)
class Listing:
    """One paginated streaming API and a small world for it."""

    name: str
    request: Callable[..., Any]  # (tenant, other_filter=False, **fields) -> request
    call: Callable[[Api, Any], Any]  # (api, request) -> response stream
    key: Callable[[Any], str]
    seed: tuple[str, ...]  # relationships giving the keys `keys`, in order
    keys: tuple[str, ...]
    inserted: tuple[str, ...]  # one before the third key, one after every key
    deleted: str  # gives the fifth key, not yet seen after a page of three


def _read(tenant: str, other_filter: bool = False, **fields: Any) -> Any:
    flt = core_pb2.RelationshipFilter(
        resource_type="document", resource_ids=["d"], relation="banned" if other_filter else ""
    )
    return relationships_pb2.ReadRelationshipsRequest(tenant=tenant, filter=flt, **fields)


def _lookup_resources(tenant: str, other_filter: bool = False, **fields: Any) -> Any:
    return permissions_pb2.LookupResourcesRequest(
        tenant=tenant,
        resource_type="document",
        permission="view",
        subject=subj("user:bob" if other_filter else "user:alice"),
        **fields,
    )


def _lookup_subjects(tenant: str, other_filter: bool = False, **fields: Any) -> Any:
    return permissions_pb2.LookupSubjectsRequest(
        tenant=tenant,
        resource=obj("document:e" if other_filter else "document:d"),
        permission="view",
        subject_type="user",
        **fields,
    )


_VIEWERS = tuple(f"document:d#viewer@user:u{i}" for i in range(1, 7))
READ = Listing(
    "ReadRelationships",
    _read,
    lambda api, r: api.relationships.ReadRelationships(r),
    lambda reply: (
        f"document:d#{reply.relationship.relation}@user:"
        f"{reply.relationship.subject.object.object_id}"
    ),
    _VIEWERS,
    _VIEWERS,
    ("document:d#viewer@user:u2a", "document:d#viewer@user:u9"),
    "document:d#viewer@user:u5",
)
LOOKUP_RESOURCES = Listing(
    "LookupResources",
    _lookup_resources,
    lambda api, r: api.permissions.LookupResources(r),
    lambda reply: reply.resource_id,
    tuple(f"document:d{i}#viewer@user:alice" for i in range(1, 7)),
    tuple(f"d{i}" for i in range(1, 7)),
    ("document:d2a#viewer@user:alice", "document:d9#viewer@user:alice"),
    "document:d5#viewer@user:alice",
)
LOOKUP_SUBJECTS = Listing(
    "LookupSubjects",
    _lookup_subjects,
    lambda api, r: api.permissions.LookupSubjects(r),
    lambda reply: reply.subject_id,
    _VIEWERS,
    tuple(f"u{i}" for i in range(1, 7)),
    ("document:d#viewer@user:u2a", "document:d#viewer@user:u9"),
    "document:d#viewer@user:u5",
)
LISTINGS = [READ, LOOKUP_RESOURCES, LOOKUP_SUBJECTS]


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


def _read_at(reply: Any) -> str:
    stamp = reply.read_at if hasattr(reply, "read_at") else reply.looked_up_at
    token: str = stamp.token
    return token


async def _page(api: Api, listing: Listing, request: Any) -> list[Any]:
    replies: list[Any] = await collect(listing.call(api, request))
    return replies


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.name)
async def test_later_pages_read_the_first_pages_snapshot(api: Api, listing: Listing) -> None:
    await api.touch("acme", *listing.seed)
    first = await _page(api, listing, listing.request("acme", limit=3))
    assert [listing.key(r) for r in first] == list(listing.keys[:3])

    await api.touch("acme", *listing.inserted)
    await api.delete("acme", listing.deleted)
    now = await _page(api, listing, listing.request("acme", consistency=_FULL))
    assert len(now) == len(listing.keys) + 1  # the writes happened: 2 in, 1 out

    cursor = first[-1].cursor
    rest = await _page(api, listing, listing.request("acme", cursor=cursor))
    assert [listing.key(r) for r in first + rest] == list(listing.keys)
    # every page of one listing says it was read at the same snapshot
    assert {_read_at(r) for r in rest} == {_read_at(first[0])}

    # a smaller page from the same cursor, and a page from the middle of the second one
    one = await _page(api, listing, listing.request("acme", limit=1, cursor=cursor))
    assert [listing.key(r) for r in one] == [listing.keys[3]]
    tail = await _page(api, listing, listing.request("acme", cursor=rest[0].cursor))
    assert [listing.key(r) for r in tail] == list(listing.keys[4:])


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.name)
async def test_a_cursor_works_only_where_it_was_issued(api: Api, listing: Listing) -> None:
    for tenant in ("acme", "globex"):
        await api.touch(tenant, *listing.seed)
    first = await _page(api, listing, listing.request("acme", limit=2))
    cursor = first[-1].cursor

    await cursor_refused(
        listing.call(api, listing.request("globex", cursor=cursor)), "another tenant"
    )
    await cursor_refused(
        listing.call(api, listing.request("acme", other_filter=True, cursor=cursor)),
        "another request",
    )
    for other in LISTINGS:
        if other is not listing:
            await cursor_refused(
                other.call(api, other.request("acme", cursor=cursor)), listing.name
            )
    for token in tampered(cursor.token):
        altered = core_pb2.Cursor(token=token)
        await cursor_refused(
            listing.call(api, listing.request("acme", cursor=altered)),
            "not a cursor this service issued",
        )
    # `limit` and `consistency` may change: the cursor overrides the consistency
    rest = await _page(
        api, listing, listing.request("acme", cursor=cursor, limit=10, consistency=_FULL)
    )
    assert [listing.key(r) for r in first + rest] == list(listing.keys)


@pytest.fixture
async def forgetful(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    """A server whose retention window (about 4 microseconds) has closed on every revision
    but the head by the time the next call arrives."""
    app = await start_app(server_settings(pg_dsn, tmp_path, retention_hours=1e-9))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            client = Api(channel)
            await client.write_schema()
            yield client
    finally:
        await app.stop(grace=1.0)


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.name)
async def test_a_cursor_past_the_retention_window_is_a_failed_precondition(
    forgetful: Api, listing: Listing
) -> None:
    await forgetful.touch("acme", *listing.seed)
    first = await _page(forgetful, listing, listing.request("acme", limit=3))
    await forgetful.touch("acme", *listing.inserted)
    err = await refused(listing.call(forgetful, listing.request("acme", cursor=first[-1].cursor)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    assert "retention window" in (err.details() or "")


@pytest.mark.parametrize("revision", [2**31, 2**64])
@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.name)
async def test_a_cursor_past_the_head_is_a_failed_precondition(
    api: Api, listing: Listing, revision: int
) -> None:
    """Past 32 bits, a cursor's revision once reached the database as an int4 parameter."""
    await api.touch("acme", *listing.seed)
    first = await _page(api, listing, listing.request("acme", limit=3))
    cursor = rehashed(first[-1].cursor, at=revision)
    err = await refused(listing.call(api, listing.request("acme", cursor=cursor)))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    assert f"`{revision}`" in (err.details() or "")


def _forged(body: str) -> core_pb2.Cursor:
    """A cursor made outside the server, with a correct check digest."""
    raw = body.encode()
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return core_pb2.Cursor(token=f"{text}.{hashlib.sha256(raw).hexdigest()[:16]}")


async def test_forged_cursors_are_invalid_arguments(api: Api) -> None:
    await api.touch("acme", *READ.seed)
    for body in [
        "[" * 100_000 + "]" * 100_000,  # nested past the parser's recursion limit
        '{"v": 1}',
        "not json",
        '{"v":1,"rpc":"' + "x" * 500 + '","t":"","f":"","at":0,"k":""}',
    ]:
        await cursor_refused(
            READ.call(api, READ.request("acme", cursor=_forged(body))),
            "not a cursor this service issued",
        )


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.name)
async def test_a_lone_surrogate_in_a_cursors_position_is_not_a_cursor_of_ours(
    api: Api, listing: Listing
) -> None:
    """JSON's `\\ud800` is half a UTF-16 pair, which no stored key holds and nothing can
    write as UTF-8: ReadRelationships failed with UNKNOWN reading past one."""
    await api.touch("acme", *listing.seed)
    first = await _page(api, listing, listing.request("acme", limit=1))
    position = listing.key(first[0]) + "\ud800"
    cursor = rehashed(first[0].cursor, k=position)
    await cursor_refused(
        listing.call(api, listing.request("acme", cursor=cursor)),
        "not a cursor this service issued",
    )


def _variants(token: str) -> dict[str, str]:
    """Spellings of a cursor that decode to the same bytes: not the form it was issued in."""
    text, _, check = token.partition(".")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    loose = json.dumps(json.loads(raw)).encode()  # `", "` and `": "` between items
    bits = text[:-1] + chr(ord(text[-1]) + 1)  # unused low bits of the last character set
    return {
        "spaces-before": "    " + token,
        "characters-inside": f"{text[:4]}!!!!{text[4:]}.{check}",
        "padded": f"{text}{'=' * (4 - len(text) % 4)}.{check}",
        "unused-bits-set": f"{bits}.{check}",
        "loose-json": _forged(loose.decode()).token,
    }


@pytest.mark.parametrize(
    "variant", ["spaces-before", "characters-inside", "padded", "unused-bits-set", "loose-json"]
)
async def test_only_the_form_a_cursor_was_issued_in_is_accepted(api: Api, variant: str) -> None:
    """Each of these was once read as the cursor it spells differently."""
    await api.touch("acme", *READ.seed)
    first = await _page(api, READ, READ.request("acme", limit=3))
    token = first[-1].cursor.token
    assert len(token.partition(".")[0]) % 4 != 0  # so that `padded` and `unused-bits-set` apply
    altered = core_pb2.Cursor(token=_variants(token)[variant])
    await cursor_refused(
        READ.call(api, READ.request("acme", cursor=altered)), "not a cursor this service issued"
    )


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=40),
    st.one_of(st.integers(min_value=0), st.dictionaries(st.text(max_size=8), st.integers())),
)
def test_a_stamper_issues_the_same_cursors_as_issue(after: str, at: object) -> None:
    """Streams stamp each result's cursor from parts made once; the bytes are the same."""
    scope = CursorScope("/authz.v1.PermissionsService/LookupResources", "acme", "0f" * 8)
    assert scope.stamper(at)(after) == scope.issue(at, after)
