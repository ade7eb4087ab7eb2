"""Stopping under load drains: every call in flight when `App.stop` begins either
completes or ends UNAVAILABLE (safe to retry), never CANCELLED, and a write is applied
exactly when it was answered OK."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz_service.api.gen.authz.v1 import permissions_pb2, relationships_pb2
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import Api, obj, rel, subj

pytestmark = pytest.mark.timeout(120)

CHECKS, WRITES, LOOKUPS = 30, 5, 5  # concurrent call loops of each kind
BEFORE_STOP = 300  # calls answered before the stop, so that the server is busy


@dataclass
class Load:
    """Call loops that start no new call once `stopping` is set."""

    api: Api
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    busy: asyncio.Event = field(default_factory=asyncio.Event)
    answered: int = 0
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    writes: dict[str, str] = field(default_factory=dict)  # subject id -> status

    async def run(self, kind: str, loop: int) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            subject = f"w{loop}x{n}"
            try:
                await self._call(kind, loop, subject)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            self.codes[(kind, code)] += 1
            if kind == "write":
                self.writes[subject] = code
            self.answered += 1
            if self.answered >= BEFORE_STOP:
                self.busy.set()

    async def _call(self, kind: str, loop: int, subject: str) -> None:
        if kind == "check":
            request = permissions_pb2.CheckRequest(
                tenant="acme",
                resource=obj(f"document:d{loop % 5}"),
                permission="view",
                subject=subj("user:alice"),
            )
            if loop % 2:  # half of them read the database, half the cache
                request.consistency.fully_consistent = True
            await self.api.permissions.Check(request)
        elif kind == "write":
            update = relationships_pb2.RelationshipUpdate(
                operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
                relationship=rel(f"document:d{loop}#viewer@user:{subject}"),
            )
            await self.api.relationships.WriteRelationships(
                relationships_pb2.WriteRelationshipsRequest(
                    tenant="acme", updates=[update], idempotency_key=f"drain-{subject}"
                )
            )
        else:
            request = permissions_pb2.LookupResourcesRequest(
                tenant="acme",
                resource_type="document",
                permission="view",
                subject=subj("user:alice"),
            )
            async for _ in self.api.permissions.LookupResources(request):
                pass


async def _live_subjects(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT subject_id FROM relationships WHERE tenant = 'acme'"
            " AND subject_id LIKE 'w%' AND deleted_rev IS NULL"
        )
    finally:
        await conn.close()
    return {row["subject_id"] for row in rows}


async def test_calls_in_flight_at_stop_complete_or_end_unavailable(
    pg_dsn: str, tmp_path: Path
) -> None:
    # A grace long enough for every call in flight: one cut short by it would end
    # CANCELLED for a reason this test is not about.
    app = await start_app(server_settings(pg_dsn, tmp_path, shutdown_grace_s=30.0))
    stopped = False
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            await api.touch("acme", *(f"document:d{i}#viewer@user:alice" for i in range(5)))
            load = Load(api)
            kinds = ["check"] * CHECKS + ["write"] * WRITES + ["lookup"] * LOOKUPS
            loops = [asyncio.create_task(load.run(kind, i)) for i, kind in enumerate(kinds)]
            await load.busy.wait()
            load.stopping.set()  # every loop has one call in flight now, none starts after
            stopped = True
            await app.stop()
            await asyncio.gather(*loops)
    finally:
        if not stopped:
            await app.stop()
    codes = {code for _, code in load.codes}
    assert codes <= {"OK", "UNAVAILABLE"}, sorted(load.codes.items())
    applied = {subject for subject, code in load.writes.items() if code == "OK"}
    assert await _live_subjects(pg_dsn) == applied


async def test_calls_that_keep_coming_are_refused_unavailable_and_health_still_answers(
    pg_dsn: str, tmp_path: Path
) -> None:
    app = await start_app(server_settings(pg_dsn, tmp_path, shutdown_grace_s=1.0))
    stopped = False
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            api = Api(channel)
            await api.write_schema()
            codes: Counter[str] = Counter()
            details: list[str] = []
            busy, refused = asyncio.Event(), asyncio.Event()

            async def caller() -> None:
                # Calls back to back, without watching health, until refused: the
                # first part of the drain never sees a quiet spell.
                while not refused.is_set():
                    try:
                        await api.check("acme", "document:d0", "view", "user:alice")
                        codes["OK"] += 1
                    except grpc.aio.AioRpcError as exc:
                        codes[exc.code().name] += 1
                        details.append(exc.details() or "")
                        refused.set()
                    if codes["OK"] >= 20:
                        busy.set()

            callers = [asyncio.create_task(caller()) for _ in range(4)]
            await busy.wait()
            stopped = True
            stopping = asyncio.create_task(app.stop())
            await refused.wait()
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
            await asyncio.gather(*callers)
            await stopping
    finally:
        if not stopped:
            await app.stop()
    assert set(codes) == {"OK", "UNAVAILABLE"}, codes
    assert all("shutting down" in text for text in details), details
