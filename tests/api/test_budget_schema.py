"""Schema writes within budget (issue 10): compiling is linear in the schema, runs off
the event loop, and sizes are bounded (AUTHZ_MAX_SCHEMA_BYTES, AUTHZ_MAX_CAVEAT_BYTES).
Once 2,000 chained permissions took 12.5 s on the event loop, stalling every tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2, schema_pb2
from authz_service.app import App
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import ALLOWED, DENIED, SCHEMA, Api, obj, subj
from tests.api.stall import race


def chained(count: int) -> str:
    perms = "\n".join(f"    permission perm{i} = perm{i + 1}" for i in range(count))
    return f"{SCHEMA}\ndefinition chain {{\n    relation viewer: user\n{perms}\n    permission perm{count} = viewer\n}}\n"


@pytest.fixture
async def app(pg_dsn: str, tmp_path: Path) -> AsyncIterator[App]:
    running = await start_app(
        server_settings(pg_dsn, tmp_path, max_schema_bytes=200_000, max_caveat_bytes=2_000)
    )
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def api(app: App) -> AsyncIterator[Api]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        client = Api(channel)
        await client.write_schema()
        await client.create_tenants("other")
        await client.touch("other", "document:plan#viewer@user:alice")
        yield client


@pytest.mark.timeout(60)
async def test_long_permission_chain_compiles_without_stalling_others(app: App, api: Api) -> None:
    write = api.schema.WriteSchema(schema_pb2.WriteSchemaRequest(schema=chained(2_000)))
    finished = await race(api, write, lambda: app.schemas.compiling > 0)
    assert not isinstance(finished.expensive, grpc.aio.AioRpcError), finished.expensive
    assert finished.order == ["cheap", "expensive"]


async def test_chain_with_a_cycle_is_refused_naming_the_cycle(api: Api) -> None:
    text = chained(3_000).replace("permission perm3000 = viewer", "permission perm3000 = perm0")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.write_schema(text)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "permission `perm0` of `chain` refers to itself" in (caught.value.details() or "")


async def test_schema_over_the_size_limit_is_refused(api: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.write_schema(chained(8_000))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "AUTHZ_MAX_SCHEMA_BYTES = 200000" in (caught.value.details() or "")


async def test_caveat_over_the_size_limit_is_refused(api: Api) -> None:
    expression = " || ".join(f"x == {i}" for i in range(400))  # about 4,000 bytes
    text = f"caveat big(x int) {{ {expression} }}\n{SCHEMA}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.write_schema(text)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert "caveat `big`" in details
    assert "AUTHZ_MAX_CAVEAT_BYTES = 2000" in details


def exclusions(terms: int) -> str:
    chain = "aaa" + " - bbb" * terms
    return (
        f"{SCHEMA}\ndefinition chain_test {{\n    relation aaa: user\n    relation bbb: user\n"
        f"    permission ppp = {chain}\n}}\n"
    )


@pytest.mark.parametrize("terms", [500, 1_000])
async def test_a_long_exclusion_chain_is_refused_naming_the_permission(
    api: Api, terms: int
) -> None:
    """1,000 terms (6 KB) once crashed WriteSchema (RecursionError, INTERNAL); 500 were
    stored, and then Check, Explain, ListPermissions and LookupSubjects crashed."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await api.write_schema(exclusions(terms))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert f"permission `ppp` of `chain_test` nests operators {terms} deep" in details
    assert "over the limit of 64" in details


async def test_every_call_answers_an_exclusion_chain_at_the_limit(api: Api) -> None:
    await api.write_schema(exclusions(64))
    await api.touch("acme", "chain_test:c1#aaa@user:u1", "chain_test:c1#bbb@user:u2")
    resource, subject = obj("chain_test:c1"), subj("user:u1")
    full = core_pb2.Consistency(fully_consistent=True)
    check = await api.permissions.Check(
        permissions_pb2.CheckRequest(
            tenant="acme",
            resource=resource,
            permission="ppp",
            subject=subject,
            consistency=full,
            with_explanation=True,
        )
    )
    assert check.decision == ALLOWED
    assert check.explanation.root.kind == core_pb2.ExplanationNode.KIND_PERMISSION
    assert (await api.explain("acme", "chain_test:c1", "ppp", "user:u1")).decision == ALLOWED
    assert (await api.explain("acme", "chain_test:c1", "ppp", "user:u2")).decision == DENIED
    listed = await api.permissions.ListPermissions(
        permissions_pb2.ListPermissionsRequest(
            tenant="acme", resource=resource, subject=subject, consistency=full
        )
    )
    assert [(p.permission, p.decision) for p in listed.permissions] == [("ppp", ALLOWED)]
    subjects = api.permissions.LookupSubjects(
        permissions_pb2.LookupSubjectsRequest(
            tenant="acme",
            resource=resource,
            permission="ppp",
            subject_type="user",
            consistency=full,
        )
    )
    assert [s.subject_id async for s in subjects] == ["u1"]
    resources = api.permissions.LookupResources(
        permissions_pb2.LookupResourcesRequest(
            tenant="acme",
            resource_type="chain_test",
            permission="ppp",
            subject=subject,
            consistency=full,
        )
    )
    assert [r.resource_id async for r in resources] == ["c1"]


async def test_a_deep_chain_of_a_permission_nested_to_the_limit_is_decided(api: Api) -> None:
    """48 levels of it once took some 6,000 Python frames: INTERNAL (tests/engine/
    test_engine_stack.py)."""
    nested = "(aaa + parent->ppp)" + " - bbb" * 63
    await api.write_schema(
        f"{SCHEMA}\ndefinition thing {{\n    relation parent: thing\n    relation aaa: user\n"
        f"    relation bbb: user\n    permission ppp = {nested}\n}}\n"
    )
    chain = [f"thing:t{i}#parent@thing:t{i + 1}" for i in range(48)]
    await api.touch("acme", *chain, "thing:t48#aaa@user:u1", "thing:t0#bbb@user:u2")
    await api.touch("acme", "thing:t48#aaa@user:u2")
    for subject, decision in (("user:u1", ALLOWED), ("user:u2", DENIED), ("user:u3", DENIED)):
        reply = await api.check("acme", "thing:t0", "ppp", subject, full=True)
        assert reply.decision == decision, subject
        explained = await api.explain("acme", "thing:t0", "ppp", subject)
        assert explained.decision == decision, subject
