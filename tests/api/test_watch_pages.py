"""Watch of a revision too large for one response: it is read in pages and sent in parts
of bounded size, and a resume token never points into the middle of it.

A Watch replaying a bulk load (probe e11: one revision of 200,100 relationships) sent
ONE response of 200,100 changes, which a client with gRPC's default 4 MiB receive limit
can never read; building it blocked another tenant's Check for seconds and kept about
300 MB per stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import relationships_pb2
from authz_service.api.tokens import decode_token
from authz_service.app import App
from authz_service.store.index import IndexedStore
from tests.api.helpers import Api

MESSAGE_BYTES = 1 << 20  # docs/api.md, Watch: a response holds at most 1 MiB of changes
MESSAGE_CHANGES = 1000  # ... and at most 1,000 changes
PAGE = 1000  # changes read from the database at once

LONG = "x" * 1000  # object ids near their 1,024-character limit: big changes


@pytest.fixture
async def api(channel: grpc.aio.Channel) -> Api:
    client = Api(channel)
    await client.write_schema()
    return client


async def _one_big_revision(api: Api, texts: list[str]) -> tuple[str, str]:
    """Writes `texts` (in writes of 1,000), then deletes them all at one revision:
    (the token before the delete, the delete's token)."""
    before = ""
    for start in range(0, len(texts), 1000):
        before = await api.touch("acme", *texts[start : start + 1000])
    deleted = await api.relationships.DeleteRelationships(
        relationships_pb2.DeleteRelationshipsRequest(
            tenant="acme",
            filter={"subject_type": "user", "subject_ids": ["u"]},
        )
    )
    return before, deleted.deleted_at.token


async def _through_revision(watch: Any) -> list[relationships_pb2.WatchResponse]:
    """The responses up to the first that is not part of a larger revision."""
    got = [await watch.read()]
    while got[-1].partial:
        got.append(await watch.read())
    return got


def _ids(replies: list[relationships_pb2.WatchResponse]) -> list[str]:
    return [c.relationship.resource.object_id for r in replies for c in r.changes]


def _revision(token: str) -> int:
    return decode_token(token, "acme")


async def test_a_revision_larger_than_a_response_arrives_in_bounded_parts(api: Api) -> None:
    texts = [f"document:{LONG}{i:04d}#viewer@user:u" for i in range(1200)]
    before, deleted = await _one_big_revision(api, texts)
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after={"token": before})
    )
    async with asyncio.timeout(30):
        replies = [await watch.read()]
        assert replies[0].ByteSize() <= MESSAGE_BYTES
        assert len(replies[0].changes) <= MESSAGE_CHANGES
        while replies[-1].partial:
            replies.append(await watch.read())
    watch.cancel()
    assert len(replies) > 1
    for reply in replies:
        assert reply.ByteSize() <= MESSAGE_BYTES
        assert len(reply.changes) <= MESSAGE_CHANGES
        assert all(c.operation == c.OPERATION_DELETE for c in reply.changes)
    assert _ids(replies) == [f"{LONG}{i:04d}" for i in range(1200)]
    # Only the last part names the revision: a resume point is a whole revision. The
    # parts before it name the revision before (where a resumed watch starts again).
    assert [_revision(r.changes_through.token) for r in replies] == [
        *[_revision(before)] * (len(replies) - 1),
        _revision(deleted),
    ]


async def test_a_large_revision_is_read_in_pages(app: App, api: Api) -> None:
    """Memory stays bounded by a page however large the revision: the watch never asks
    the store for more than a page (and the one change it looks ahead at)."""
    texts = [f"document:d{i:04d}#viewer@user:u" for i in range(2500)]
    before, deleted = await _one_big_revision(api, texts)
    store = app.store.inner if isinstance(app.store, IndexedStore) else app.store
    sizes: list[int] = []

    def counted(read: Callable[..., Awaitable[list[Any]]]) -> Callable[..., Awaitable[list[Any]]]:
        async def wrapper(*args: Any, **kwargs: Any) -> list[Any]:
            found = await read(*args, **kwargs)
            sizes.append(len(found))
            return found

        return wrapper

    for name in ("changes", "changes_page"):  # whichever the watch reads with
        if hasattr(store, name):
            setattr(store, name, counted(getattr(store, name)))
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after={"token": before})
    )
    async with asyncio.timeout(30):
        await watch.read()
        assert sizes
        assert max(sizes) <= PAGE + 1
        replies = await _through_revision(watch)
    watch.cancel()
    assert max(sizes) <= PAGE + 1
    assert len(_ids(replies)) < 2500  # the rest of the revision
    assert _revision(replies[-1].changes_through.token) == _revision(deleted)


async def test_a_watch_resumed_from_a_part_gets_the_whole_revision_again(api: Api) -> None:
    texts = [f"document:d{i:04d}#viewer@user:u" for i in range(1500)]
    before, deleted = await _one_big_revision(api, texts)
    first = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after={"token": before})
    )
    async with asyncio.timeout(30):
        part = await first.read()
    first.cancel()
    assert part.partial
    assert 0 < len(part.changes) < 1500
    # The client drops here and resumes from the last token it received.
    resumed = api.relationships.Watch(
        relationships_pb2.WatchRequest(tenant="acme", after=part.changes_through)
    )
    async with asyncio.timeout(30):
        replies = await _through_revision(resumed)
    resumed.cancel()
    assert _ids(replies) == [f"d{i:04d}" for i in range(1500)]
    assert _revision(replies[-1].changes_through.token) == _revision(deleted)


async def test_a_filtered_watch_completes_a_revision_whose_last_page_it_skips(
    api: Api,
) -> None:
    """The documents fill the first page of the revision and the folders, which the
    filter skips, the second: an empty response ends the revision and names it."""
    texts = [
        *(f"document:d{i:04d}#viewer@user:u" for i in range(PAGE)),
        *(f"folder:f{i:04d}#viewer@user:u" for i in range(500)),
    ]
    before, deleted = await _one_big_revision(api, texts)
    watch = api.relationships.Watch(
        relationships_pb2.WatchRequest(
            tenant="acme", after={"token": before}, filters=[{"resource_type": "document"}]
        )
    )
    async with asyncio.timeout(30):
        replies = await _through_revision(watch)
    watch.cancel()
    assert _ids(replies) == [f"d{i:04d}" for i in range(PAGE)]
    assert replies[-1].changes == []
    assert _revision(replies[-1].changes_through.token) == _revision(deleted)
    assert all(r.partial for r in replies[:-1])
