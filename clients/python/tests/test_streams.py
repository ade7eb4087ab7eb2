"""Streams dropped midway: resumed from the cursor where the RPC has one, raised where not.

The real server drops a stream only when it dies, at no point a test can choose; so these
tests use a stand-in AuditService (a real gRPC server on loopback) that drops the stream
with UNAVAILABLE after its first result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from authz_client import AsyncAuthzClient, UnavailableError
from authz_client._stubs import audit_pb2, audit_pb2_grpc, core_pb2


class _DroppingAudit(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self) -> None:
        self.cursors: list[str] = []
        self.replays = 0

    async def QueryDecisions(
        self, request: audit_pb2.QueryDecisionsRequest, context: Any
    ) -> AsyncIterator[audit_pb2.QueryDecisionsResponse]:
        self.cursors.append(request.cursor.token)
        first = int(request.cursor.token or "0") + 1
        for n in range(first, 4):
            yield audit_pb2.QueryDecisionsResponse(
                record=audit_pb2.DecisionRecord(decision_id=f"d{n}"),
                cursor=core_pb2.Cursor(token=str(n)),
            )
            if n == 1:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "draining")

    async def ReplayDecisions(
        self, request: audit_pb2.ReplayDecisionsRequest, context: Any
    ) -> AsyncIterator[audit_pb2.ReplayDecisionsResponse]:
        self.replays += 1
        yield audit_pb2.ReplayDecisionsResponse(
            decision=audit_pb2.ReplayedDecision(decision_id="d1")
        )
        await context.abort(grpc.StatusCode.UNAVAILABLE, "draining")


@pytest.fixture
async def audit() -> AsyncIterator[tuple[str, _DroppingAudit]]:
    servicer = _DroppingAudit()
    server = grpc.aio.server()
    audit_pb2_grpc.add_AuditServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", servicer
    await server.stop(None)


async def test_a_stream_with_a_cursor_resumes_after_the_last_result(
    audit: tuple[str, _DroppingAudit],
) -> None:
    target, servicer = audit
    async with AsyncAuthzClient(target, tenant="t", backoff=(0.001, 0.002)) as client:
        ids = [r.decision_id async for r in client.query_decisions()]
    assert ids == ["d1", "d2", "d3"]  # none repeated, none missed
    assert servicer.cursors == ["", "1"]


async def test_a_stream_without_a_cursor_is_not_read_twice(
    audit: tuple[str, _DroppingAudit],
) -> None:
    target, servicer = audit
    async with AsyncAuthzClient(target, tenant="t", backoff=(0.001, 0.002)) as client:
        replay = client.replay_decisions()
        first = await anext(replay)
        with pytest.raises(UnavailableError):
            await anext(replay)
    assert first.decision_id == "d1"  # type: ignore[union-attr]  # a ReplayedDecision here
    assert servicer.replays == 1  # not started again, which would repeat what was yielded
