"""A lookup's candidate walk cannot stall another tenant (issue 10's request budgets,
found again by a probe): the walks of LookupResources and LookupSubjects ran in one
piece, so a Check of another tenant waited for the whole walk (0.83 s behind one
LookupResources over 200,000 documents, past its deadline behind larger ones)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import permissions_pb2
from authz_service.app import App
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, Api, obj, subj
from tests.api.stall import race

# Relationships per write: a few large writes (PostgreSQL slows from the sixth write of
# a thousand on, in a fresh database).
_BATCH = 10_000


async def _world(app: App, api: Api, rels: list[str]) -> None:
    await api.write_schema()
    for start in range(0, len(rels), _BATCH):
        await api.touch("acme", *rels[start : start + _BATCH])
    await api.touch("acme", "document:plan#viewer@user:alice")
    await api.create_tenants("other")
    await api.touch("other", "document:plan#viewer@user:alice")
    # Both tenants in memory: what is raced is the walk over the index, not loading it
    # (reads from PostgreSQL while the index loads let others run anyway).
    assert app.index is not None
    for tenant in ("acme", "other"):
        assert await app.index.wait_loaded(tenant)
        reply = await api.check(tenant, "document:plan", "view", "user:alice")
        assert reply.decision == ALLOWED


@pytest.fixture
async def served(pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[App, Api]]:
    app = await start_app(server_settings(pg_dsn, tmp_path, max_batch=_BATCH))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, Api(channel)
    finally:
        await app.stop(grace=1.0)


async def _ids(stream: Any, field: str) -> list[str]:
    """The ids (`field` of each reply) a lookup streamed."""
    return [getattr(reply, field) async for reply in stream]


@pytest.mark.timeout(120)
async def test_another_tenant_is_answered_while_a_resource_walk_runs(
    served: tuple[App, Api],
) -> None:
    app, api = served
    # ann reaches 20,000 documents through 20 groups (1,000 each, within the fan-out
    # limit): every one is proven by the walk, so the walk is all the call does.
    rels = [f"group:g{g}#member@user:ann" for g in range(20)]
    rels += [f"document:d{g}x{i}#viewer@group:g{g}#member" for g in range(20) for i in range(1_000)]
    await _world(app, api, rels)
    expensive = _ids(
        api.permissions.LookupResources(
            permissions_pb2.LookupResourcesRequest(
                tenant="acme",
                resource_type="document",
                permission="view",
                subject=subj("user:ann"),
                limit=1,
            )
        ),
        "resource_id",
    )
    finished = await race(api, expensive, lambda: app.permissions.slots.in_flight("acme") > 0)
    assert finished.expensive == ["d0x0"]
    assert finished.order == ["cheap", "expensive"]  # before: expensive, then cheap


@pytest.mark.timeout(120)
async def test_another_tenant_is_answered_while_a_subject_walk_runs(
    served: tuple[App, Api],
) -> None:
    app, api = served
    # document:z viewed by 5,000 groups of one user each, and by alice directly: she sorts
    # first and her Check is two steps, so the walk over the groups is all the call does.
    rels = [f"document:z#viewer@group:h{i}#member" for i in range(5_000)]
    rels += [f"group:h{i}#member@user:v{i}" for i in range(5_000)]
    await _world(app, api, [*rels, "document:z#viewer@user:alice"])
    expensive = _ids(
        api.permissions.LookupSubjects(
            permissions_pb2.LookupSubjectsRequest(
                tenant="acme",
                resource=obj("document:z"),
                permission="view",
                subject_type="user",
                limit=1,
            )
        ),
        "subject_id",
    )
    finished = await race(api, expensive, lambda: app.permissions.slots.in_flight("acme") > 0)
    assert finished.expensive == ["alice"]
    assert finished.order == ["cheap", "expensive"]  # before: expensive, then cheap
