"""Caveat context and CEL within budget (issue 10). Once a 3,000-number context made
`xs.all(a, xs.all(b, a + b >= 0))` hold the server 7 s, 10,000 numbers never finished,
and a 300,000-key context with no caveat at all took 7 s: in every tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz_service.api.gen.authz.v1 import permissions_pb2, relationships_pb2
from authz_service.app import App
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, Api, obj, rel, subj
from tests.api.stall import race

SCHEMA = """
caveat pairs(xs list<int>) { xs.all(a, xs.all(b, a + b >= 0)) }
definition user {}
definition document {
    relation viewer: user | user with pairs
    permission view = viewer
}
"""


@pytest.fixture
async def app(pg_dsn: str, tmp_path: Path) -> AsyncIterator[App]:
    running = await start_app(server_settings(pg_dsn, tmp_path))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def api(app: App) -> AsyncIterator[Api]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        client = Api(channel)
        await client.write_schema(SCHEMA)
        await client.touch("acme", "document:doc#viewer@user:alice[pairs]")
        await client.create_tenants("other")
        await client.touch("other", "document:plan#viewer@user:alice")
        yield client


def _check(context: dict[str, Any]) -> permissions_pb2.CheckRequest:
    request = permissions_pb2.CheckRequest(
        tenant="acme",
        resource=obj("document:doc"),
        permission="view",
        subject=subj("user:alice"),
    )
    request.context.update(context)
    return request


async def _refused(app: App, api: Api, context: dict[str, Any]) -> grpc.aio.AioRpcError:
    call = api.permissions.Check(_check(context))
    finished = await race(api, call, lambda: app.permissions.slots.in_flight("acme") > 0)
    assert isinstance(finished.expensive, grpc.aio.AioRpcError), finished.expensive
    return finished.expensive


@pytest.mark.timeout(60)
async def test_three_thousand_numbers_are_refused_at_the_edge(app: App, api: Api) -> None:
    err = await _refused(app, api, {"xs": list(range(3_000))})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "`context` has a list of 3000 values" in (err.details() or "")
    assert "AUTHZ_MAX_CONTEXT_LIST = 1000" in (err.details() or "")


@pytest.mark.timeout(60)
async def test_quadratic_caveat_over_its_cost_limit_is_refused(app: App, api: Api) -> None:
    err = await _refused(app, api, {"xs": list(range(900))})
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "caveat `pairs`" in (err.details() or "")
    assert "AUTHZ_MAX_CAVEAT_COST = 1000000" in (err.details() or "")


async def test_small_context_is_still_evaluated(api: Api) -> None:
    reply = await api.permissions.Check(_check({"xs": [1, 2, 3]}))
    assert reply.decision == ALLOWED


@pytest.mark.timeout(60)
async def test_huge_context_without_a_caveat_is_refused(app: App, api: Api) -> None:
    err = await _refused(app, api, {f"k{i}": i for i in range(100_000)})
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "AUTHZ_MAX_CONTEXT_BYTES = 65536" in (err.details() or "")


async def test_deep_context_is_refused(app: App, api: Api) -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(20):
        deep = {"next": deep}
    err = await _refused(app, api, deep)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "AUTHZ_MAX_CONTEXT_DEPTH = 8" in (err.details() or "")


async def test_many_keys_are_refused(app: App, api: Api) -> None:
    nested = {f"k{i}": {"a": 1, "b": 2} for i in range(400)}  # 1,200 keys, ~15 KB
    err = await _refused(app, api, nested)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "AUTHZ_MAX_CONTEXT_KEYS = 1000" in (err.details() or "")


async def test_stored_caveat_context_is_bounded_too(api: Api) -> None:
    msg = rel("document:doc#viewer@user:bob[pairs]")
    msg.caveat.context.update({"xs": list(range(3_000))})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.relationships.WriteRelationships(
            relationships_pb2.WriteRelationshipsRequest(
                tenant="acme",
                updates=[
                    relationships_pb2.RelationshipUpdate(
                        operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
                        relationship=msg,
                    )
                ],
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "updates[0].relationship.caveat.context" in (caught.value.details() or "")


async def test_caveat_too_costly_on_any_input_is_refused_when_written(api: Api) -> None:
    numbers = ", ".join(str(i) for i in range(200))
    expression = f"[{numbers}].all(a, [{numbers}].all(b, [{numbers}].all(c, a + b + c >= x)))"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.write_schema(f"caveat cubic(x int) {{ {expression} }}\n{SCHEMA}")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "AUTHZ_MAX_CAVEAT_COST = 1000000" in (caught.value.details() or "")
