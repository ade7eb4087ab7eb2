"""Server spans per sampled call, W3C propagation, and nothing at all at ratio 0."""

from __future__ import annotations

import random

import grpc
import pytest
from grpc_health.v1 import health_pb2
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode

from authz_service.errors import InvalidArgument
from authz_service.telemetry import Tracing, setup_tracing, span
from tests.telemetry.conftest import SERVICE, Harness

pytestmark = pytest.mark.timeout(60)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def traceparent(flags: str) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-{flags}"), ("tracestate", "vendor=x"))


@pytest.mark.parametrize("trace_ratio", [1.0])
async def test_one_server_span_per_call(harness: Harness) -> None:
    health = harness.health()
    await health.Check(health_pb2.HealthCheckRequest(service=""))
    await health.Check(health_pb2.HealthCheckRequest(service=""))
    spans = harness.spans()
    assert [s.name for s in spans] == ["grpc.health.v1.Health/Check"] * 2
    first = spans[0]
    assert first.kind is SpanKind.SERVER
    assert first.parent is None
    assert first.attributes is not None
    assert first.attributes["rpc.system"] == "grpc"
    assert first.attributes["rpc.service"] == "grpc.health.v1.Health"
    assert first.attributes["rpc.method"] == "Check"
    assert first.attributes["rpc.grpc.status_code"] == 0
    assert first.attributes["authz.request_id"]
    assert spans[0].context.trace_id != spans[1].context.trace_id


@pytest.mark.parametrize("trace_ratio", [1.0])
async def test_incoming_traceparent_is_the_parent(harness: Harness) -> None:
    reply = await harness.unary()(b"hi", metadata=traceparent("01"))
    spans = {s.name: s for s in harness.spans()}
    server = spans[f"{SERVICE}/Unary"]
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None
    assert server.parent.is_remote
    assert f"{server.parent.span_id:016x}" == PARENT_ID
    assert server.context.trace_state.get("vendor") == "x"
    # The handler saw the span as current, and span() made a child of it.
    assert reply.decode().split("|")[1] == TRACE_ID
    child = spans["echo.child"]
    assert child.parent is not None
    assert child.parent.span_id == server.context.span_id
    assert child.attributes == {"size": 2}


@pytest.mark.parametrize("trace_ratio", [1.0])
async def test_caller_decision_not_to_sample_is_kept(harness: Harness) -> None:
    await harness.unary()(b"hi", metadata=traceparent("00"))
    assert harness.spans() == []


@pytest.mark.parametrize("trace_ratio", [1.0])
async def test_malformed_traceparent_starts_a_new_trace(harness: Harness) -> None:
    await harness.unary()(b"hi", metadata=(("traceparent", "00-nonsense-01"),))
    (server, _child) = sorted(harness.spans(), key=lambda s: s.name != f"{SERVICE}/Unary")
    assert server.parent is None


@pytest.mark.parametrize("trace_ratio", [1.0])
async def test_failed_calls_mark_span_status(harness: Harness) -> None:
    for payload in (b"abort", b"boom"):
        with pytest.raises(grpc.aio.AioRpcError):
            await harness.unary()(payload)
    aborted, failed = harness.spans()
    assert aborted.attributes is not None
    assert aborted.attributes["rpc.grpc.status_code"] == 3  # INVALID_ARGUMENT
    assert aborted.status.status_code is StatusCode.UNSET  # the caller's fault
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]


async def test_ratio_zero_records_no_spans(harness: Harness) -> None:
    assert not harness.telemetry.tracing.enabled
    reply = await harness.unary()(b"hi", metadata=traceparent("01"))
    assert reply.decode().split("|")[1] == "0" * 32  # no current span in the handler
    assert harness.spans() == []
    with span("anything") as s:
        assert not s.is_recording()


def test_root_sampling_follows_the_ratio_rule() -> None:
    random.seed(7)
    exporter = InMemorySpanExporter()
    tracing = Tracing(0.25, exporter)
    sampler = TraceIdRatioBased(0.25)
    try:
        sampled = [tracing.start_server_span("x", None, None, {}) for _ in range(4000)]
        kept = [s for s in sampled if s is not None]
        assert 800 < len(kept) < 1200
        for s in kept:
            assert s.get_span_context().trace_id & sampler.TRACE_ID_LIMIT < sampler.bound
            assert s.is_recording()
            s.end()
    finally:
        tracing.shutdown()


def test_span_is_a_noop_outside_a_sampled_call() -> None:
    tracing = setup_tracing(1.0, InMemorySpanExporter())
    try:
        with span("orphan", a=1) as s:
            assert not s.is_recording()
    finally:
        tracing.shutdown()


def test_ratio_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="trace sample ratio"):
        Tracing(1.5)
