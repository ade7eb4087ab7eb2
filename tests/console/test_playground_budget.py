"""The playground's in-memory work is bounded like a call (docs/console.md): under the
server's default deadline, without holding worker 0's event loop, which serves gRPC too.
It ran with no deadline in long stretches on the loop: a `check`-only key validating
~8,800 nested group relationships with 12 assertions took ~25 s, and a gRPC Check sent
meanwhile failed DEADLINE_EXCEEDED."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx2 as httpx
import pytest

from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2, permissions_pb2_grpc
from authz_service.app import App
from authz_service.console import sandbox
from authz_service.credentials import Scope, new_key
from authz_service.model import RelationshipUpdate, UpdateOp, parse_relationship
from authz_service.service.audit import CallInfo
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import obj, subj
from tests.console.test_listener import DEMO_SCHEMA, _sign_in, pg_dsn

__all__ = ["pg_dsn"]

NESTED = """definition user {}
definition group {
  relation member: user | group#member
}
definition doc {
  relation viewer: group#member
  permission view = viewer
}"""


def _nested(layers: int, width: int) -> str:
    """Layers of groups, each group a member of every group of the layer above: a
    denied check walks every path (the probe's world)."""
    rels = [
        f"group:g{i}_{a}#member@group:g{i + 1}_{b}#member"
        for i in range(layers - 1)
        for a in range(width)
        for b in range(width)
    ]
    rels += [f"doc:d#viewer@group:g0_{a}#member" for a in range(width)]
    rels.append(f"group:g{layers - 1}_0#member@user:x")
    return "\n".join(rels)


@pytest.fixture
async def app(pg_dsn: str, tmp_path: Path) -> AsyncIterator[App]:
    settings = server_settings(
        pg_dsn, tmp_path, auth=True, console_listen="127.0.0.1:0", default_deadline_ms=1000
    )
    running = await start_app(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def test_an_evaluation_over_the_deadline_says_so_while_grpc_is_served(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.schemas.write(DEMO_SCHEMA)
    rel = parse_relationship("doc:a#viewer@user:ann")
    await app.relationships.write("acme", [RelationshipUpdate(UpdateOp.TOUCH, rel)], CallInfo())
    record, key = new_key(tenant="acme", scopes=[Scope.CHECK], name="console")
    await app.store.keys.create(record)
    started = asyncio.Event()
    snapshot = sandbox.World.snapshot

    async def noted(world: sandbox.World) -> object:
        started.set()
        return await snapshot(world)

    monkeypatch.setattr(sandbox.World, "snapshot", noted)
    assertions = "assertFalse:\n" + "".join(f"  - doc:d#view@user:u{i}\n" for i in range(12))
    assert app.console is not None
    base = f"http://127.0.0.1:{app.console.port}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=120) as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        csrf = await _sign_in(http, key)
        form = {"csrf": csrf, "schema": NESTED, "relationships": _nested(40, 15)}
        validating = asyncio.create_task(
            http.post("/playground/validate", data={**form, "assertions": assertions})
        )
        await started.wait()
        reply = await permissions_pb2_grpc.PermissionsServiceStub(channel).Check(
            permissions_pb2.CheckRequest(
                tenant="acme", resource=obj("doc:a"), permission="view", subject=subj("user:ann")
            ),
            metadata=(("authorization", f"Bearer {key}"),),
        )
        assert reply.decision == core_pb2.DECISION_ALLOWED
        assert not validating.done()  # the Check did not wait for the playground
        page = await validating
    assert page.status_code == 200
    assert "AUTHZ_DEFAULT_DEADLINE_MS = 1000" in page.text, page.text[-2000:]
    assert "<h2>Assertions</h2>" not in page.text  # no partial verdict
