"""Retries: only UNAVAILABLE, with backoff, within the call's deadline. No mocked server:
the failures are real (a port nothing listens on, a peer that never answers)."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import grpc
import pytest
from authz_client import (
    AsyncAuthzClient,
    Backoff,
    DeadlineExceededError,
    InvalidArgumentError,
    RelationshipFilter,
    UnavailableError,
)
from authz_client._core import ClientCore
from authz_client._stubs import core_pb2, relationships_pb2
from authz_client.retry import Deadline
from client_support import Recorder, ServerProcess, free_port

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


async def test_retries_until_the_server_starts(recorder: Recorder) -> None:
    target = f"127.0.0.1:{free_port()}"
    async with AsyncAuthzClient(
        target, tenant="demo", retries=500, backoff=(0.05, 0.2), timeout=60, interceptors=[recorder]
    ) as client:
        call = asyncio.create_task(client.check("document:readme", "view", "user:alice"))
        # Start the server only once an attempt has failed: nothing listened then.
        await asyncio.wait_for(recorder.failed.wait(), timeout=10)
        server = ServerProcess(target)
        await asyncio.to_thread(server.start)
        try:
            result = await asyncio.wait_for(call, timeout=60)
        finally:
            await asyncio.to_thread(server.stop)
    assert result.allowed
    assert recorder.codes[0] == UNAVAILABLE
    assert recorder.codes[-1] == grpc.StatusCode.OK


async def test_gives_up_after_the_configured_retries(recorder: Recorder) -> None:
    async with AsyncAuthzClient(
        f"127.0.0.1:{free_port()}", retries=3, backoff=(0.001, 0.002), interceptors=[recorder]
    ) as client:
        with pytest.raises(UnavailableError) as caught:
            await client.check("document:readme", "view", "user:alice", tenant="demo")
    assert caught.value.code == UNAVAILABLE
    assert recorder.codes == [UNAVAILABLE] * 4  # the first attempt and three retries


async def test_answers_are_not_retried(server: str, recorder: Recorder) -> None:
    async with AsyncAuthzClient(server, tenant="demo", interceptors=[recorder]) as client:
        with pytest.raises(InvalidArgumentError):
            await client.check("document:readme", "frobnicate", "user:alice")
    assert recorder.codes == [grpc.StatusCode.INVALID_ARGUMENT]


async def test_deadline_exceeded_is_not_retried(recorder: Recorder) -> None:
    # A peer that accepts TCP connections (the kernel does, from the backlog) and never
    # speaks HTTP/2: the call can only run out of time.
    with socket.create_server(("127.0.0.1", 0)) as black_hole:
        port = black_hole.getsockname()[1]
        async with AsyncAuthzClient(
            f"127.0.0.1:{port}", tenant="demo", retries=5, timeout=0.3, interceptors=[recorder]
        ) as client:
            with pytest.raises(DeadlineExceededError):
                await client.write_relationships(["document:x#viewer@user:erin"])
    assert recorder.codes == [grpc.StatusCode.DEADLINE_EXCEEDED]


async def test_delete_with_preconditions_is_not_retried(recorder: Recorder) -> None:
    must_exist = relationships_pb2.Precondition(
        operation=relationships_pb2.Precondition.OPERATION_MUST_MATCH,
        filter=core_pb2.RelationshipFilter(resource_type="document"),
    )
    async with AsyncAuthzClient(
        f"127.0.0.1:{free_port()}", tenant="demo", backoff=(0.001, 0.002), interceptors=[recorder]
    ) as client:
        with pytest.raises(UnavailableError):
            await client.delete_relationships(
                RelationshipFilter(resource_type="document"), preconditions=[must_exist]
            )
        with pytest.raises(UnavailableError):
            await client.delete_relationships(RelationshipFilter(resource_type="document"))
    assert recorder.codes == [UNAVAILABLE] + [UNAVAILABLE] * 4


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    backoff = Backoff(initial=0.05, maximum=1.0)
    rng = random.Random(20240601)
    for retry, step in enumerate([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]):
        assert step / 2 <= backoff.delay(retry, rng.random()) <= step
    assert backoff.delay(2, 0.0) == pytest.approx(0.1)
    assert Backoff(0.1, 10.0, multiplier=3.0).delay(2, 0.999999) == pytest.approx(0.9)
    assert backoff.delay(2, 0.999999) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial=2.0, maximum=1.0)


def _error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "x", None)


def test_retry_decisions() -> None:
    core = ClientCore(
        tenant=None,
        api_key=None,
        retries=2,
        backoff=(0.05, 1.0),
        timeout=None,
        rng=random.Random(1),
    )
    forever = Deadline(None)
    assert core.retry_delay(_error(UNAVAILABLE), 0, idempotent=True, deadline=forever)
    assert core.retry_delay(_error(UNAVAILABLE), 1, idempotent=True, deadline=forever)
    assert core.retry_delay(_error(UNAVAILABLE), 2, idempotent=True, deadline=forever) is None
    assert core.retry_delay(_error(UNAVAILABLE), 0, idempotent=False, deadline=forever) is None
    for code in (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INTERNAL,
    ):
        assert core.retry_delay(_error(code), 0, idempotent=True, deadline=forever) is None
    # The first wait is at least 25 ms: with 10 ms left there is no time for another try.
    almost_over = Deadline(time.monotonic() + 0.01)
    assert core.retry_delay(_error(UNAVAILABLE), 0, idempotent=True, deadline=almost_over) is None


async def test_admin_writes_are_not_retried_reads_are(recorder: Recorder) -> None:
    # None of the administration writes takes an idempotency key: one attempt only.
    async with AsyncAuthzClient(
        f"127.0.0.1:{free_port()}",
        tenant="demo",
        retries=2,
        backoff=(0.001, 0.002),
        interceptors=[recorder],
    ) as client:
        writes = [
            client.create_role("reader", [("document", "view")]),
            client.create_binding("reader", "user:alice"),
            client.suspend_subject("user:alice", reason="test"),
            client.create_key(scopes=["check"]),
            client.create_tenant("other"),
        ]
        for write in writes:
            with pytest.raises(UnavailableError):
                await write
        assert recorder.codes == [UNAVAILABLE] * len(writes)

        recorder.codes.clear()
        with pytest.raises(UnavailableError):
            await client.list_roles()
        with pytest.raises(UnavailableError):
            await client.revoke_key("k1")  # revoking twice is harmless: retried
        assert recorder.codes == [UNAVAILABLE] * 6
