"""Fairness and the subproblem budget (issue 10): a request that evaluates without end
is stopped at AUTHZ_MAX_SUBPROBLEMS, other tenants are answered meanwhile, and one
tenant cannot hold more than its share of calls at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authz_service.app import App
from authz_service.model import EMPTY_CONTEXT, Consistency, ObjectRef
from authz_service.service.audit import CallInfo
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, DENIED, Api
from tests.api.stall import race


async def _wide(api: Api, groups: int) -> None:
    """`document:doc` viewed through group g0, which nests `groups` empty groups: one
    subproblem (and one read) per group."""
    await api.write_schema()
    await api.touch("acme", "document:doc#viewer@group:g0#member")
    rels = [f"group:g0#member@group:g{i}#member" for i in range(1, groups + 1)]
    for start in range(0, len(rels), 1000):
        await api.touch("acme", *rels[start : start + 1000])
    await api.touch("acme", "document:plan#viewer@user:alice")
    await api.create_tenants("other")
    await api.touch("other", "document:plan#viewer@user:alice")


async def _server(dsn: str, tmp_path: Path, **overrides: object) -> App:
    return await start_app(server_settings(dsn, tmp_path, **overrides))


@pytest.fixture
async def budgeted(pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[App, Api]]:
    app = await _server(pg_dsn, tmp_path, max_subproblems=2_500)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await _wide(api, 3_000)
            yield app, api
    finally:
        await app.stop(grace=1.0)


@pytest.mark.timeout(120)
async def test_subproblem_budget_stops_a_wide_check_and_others_go_first(
    budgeted: tuple[App, Api],
) -> None:
    app, api = budgeted
    # Both tenants warm (their first reads load them into memory), so that what is
    # raced is evaluation: thousands of subproblems against one.
    assert (await api.check("other", "document:plan", "view", "user:alice")).decision == ALLOWED
    assert (await api.check("acme", "document:plan", "view", "user:alice")).decision == ALLOWED
    expensive = api.check("acme", "document:doc", "view", "user:alice")
    finished = await race(api, expensive, lambda: app.permissions.slots.in_flight("acme") > 0)
    err = finished.expensive
    assert isinstance(err, grpc.aio.AioRpcError), err
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "AUTHZ_MAX_SUBPROBLEMS = 2500" in (err.details() or "")
    assert finished.order == ["cheap", "expensive"]


@pytest.fixture
async def one_slot(pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[App, Api]]:
    app = await _server(pg_dsn, tmp_path, tenant_max_concurrent_rpcs=1)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await _wide(api, 3_000)
            yield app, api
    finally:
        await app.stop(grace=1.0)


@pytest.mark.timeout(120)
async def test_tenant_over_its_share_is_refused_while_others_are_served(
    one_slot: tuple[App, Api],
) -> None:
    app, api = one_slot
    slow = asyncio.ensure_future(api.check("acme", "document:doc", "view", "user:alice"))
    # The server shares this event loop: give it turns until it holds acme's call.
    while app.permissions.slots.in_flight("acme") == 0:  # noqa: ASYNC110 - no event to wait on
        await asyncio.sleep(0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.check("acme", "document:plan", "view", "user:alice")
    assert not slow.done()  # refused because acme's first call held its only slot
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "AUTHZ_TENANT_MAX_CONCURRENT_RPCS = 1" in (caught.value.details() or "")
    assert (await api.check("other", "document:plan", "view", "user:alice")).decision == ALLOWED
    outcome = await asyncio.gather(slow, return_exceptions=True)
    if isinstance(outcome[0], grpc.aio.AioRpcError):  # a slow machine: its deadline
        assert outcome[0].code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        assert outcome[0].decision == DENIED
    # The slot is free again once the call is over.
    assert (await api.check("acme", "document:plan", "view", "user:alice")).decision == ALLOWED


@pytest.mark.timeout(120)
async def test_an_open_lookup_holds_one_of_its_tenants_slots(one_slot: tuple[App, Api]) -> None:
    app, api = one_slot
    _, stream = await app.permissions.lookup_subjects(
        "acme",
        ObjectRef("document", "doc"),
        "view",
        "group",
        "member",
        EMPTY_CONTEXT,
        Consistency(),
        CallInfo(),
    )
    first = await anext(stream)
    assert first.subject_id
    assert app.permissions.slots.in_flight("acme") == 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.check("acme", "document:plan", "view", "user:alice")
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await stream.aclose()  # type: ignore[attr-defined]
    assert app.permissions.slots.in_flight("acme") == 0
    assert (await api.check("acme", "document:plan", "view", "user:alice")).decision == ALLOWED
