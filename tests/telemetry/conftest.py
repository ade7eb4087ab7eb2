"""A real grpc.aio server with the telemetry interceptor, a health service and a test
service whose methods succeed, abort, fail, stream and hang on request."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from authz_service.telemetry import Telemetry, current_request_id, span

SERVICE = "test.Echo"
log = logging.getLogger("tests.telemetry.echo")


@dataclass
class Echo:
    """Methods of `test.Echo`; requests and responses are raw bytes."""

    hang_entered: asyncio.Event = field(default_factory=asyncio.Event)
    hang_exited: asyncio.Event = field(default_factory=asyncio.Event)
    forever_closed: asyncio.Event = field(default_factory=asyncio.Event)
    seen_request_ids: list[str | None] = field(default_factory=list)

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self.seen_request_ids.append(current_request_id())
        log.info("echo called", extra={"payload": request.decode()})
        if request == b"abort":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad `abort`")
        if request == b"boom":
            raise RuntimeError("boom")
        if request == b"not-found":
            context.set_code(grpc.StatusCode.NOT_FOUND)
            return b""
        with span("echo.child", size=len(request)):
            trace_id = trace.get_current_span().get_span_context().trace_id
        return f"{current_request_id()}|{trace_id:032x}".encode()

    async def stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        count = int(request.split(b":")[0])
        for i in range(count):
            yield str(i).encode()
        if request.endswith(b":abort"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "stop")

    async def stream_writer(self, request: bytes, context: Any) -> None:
        for i in range(int(request)):
            await context.write(str(i).encode())

    async def forever(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"tick"
        finally:
            self.forever_closed.set()

    async def hang(self, request: bytes, context: Any) -> bytes:
        self.hang_entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.hang_exited.set()
        return b""

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
                "StreamWriter": grpc.unary_stream_rpc_method_handler(self.stream_writer),
                "Forever": grpc.unary_stream_rpc_method_handler(self.forever),
                "Hang": grpc.unary_unary_rpc_method_handler(self.hang),
            },
        )


@dataclass
class Harness:
    telemetry: Telemetry
    channel: grpc.aio.Channel
    echo: Echo
    exporter: InMemorySpanExporter

    def unary(self) -> Any:
        return self.channel.unary_unary(f"/{SERVICE}/Unary")

    def stream(self, name: str = "Stream") -> Any:
        return self.channel.unary_stream(f"/{SERVICE}/{name}")

    def health(self) -> health_pb2_grpc.HealthStub:
        return health_pb2_grpc.HealthStub(self.channel)

    async def scrape(self) -> str:
        port = self.telemetry.bound_metrics_port
        assert port
        url = f"http://127.0.0.1:{port}/metrics"

        def get() -> str:
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
                body: bytes = response.read()
                return body.decode()

        # The endpoint is served by this very event loop: fetch from a thread.
        return await asyncio.to_thread(get)

    async def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = await self.scrape()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def spans(self) -> list[Any]:
        self.telemetry.tracing.force_flush()
        return list(self.exporter.get_finished_spans())


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def start_harness(trace_ratio: float) -> tuple[Harness, grpc.aio.Server]:
    exporter = InMemorySpanExporter()
    telemetry = await Telemetry.start("127.0.0.1:0", trace_ratio, span_exporter=exporter)
    server = grpc.aio.server(interceptors=[telemetry.interceptor])
    echo = Echo()
    server.add_generic_rpc_handlers((echo.handler(),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return Harness(telemetry, channel, echo, exporter), server


@pytest.fixture
def trace_ratio() -> float:
    return 0.0


@pytest.fixture
async def harness(trace_ratio: float) -> AsyncIterator[Harness]:
    h, server = await start_harness(trace_ratio)
    try:
        yield h
    finally:
        await h.channel.close()
        await server.stop(None)
        await h.telemetry.aclose()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    cel_level = logging.getLogger("cel").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("cel").setLevel(cel_level)
