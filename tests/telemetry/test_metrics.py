"""Calls through the interceptor show up on the real scrape endpoint."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2

from authz_service.errors import InvalidArgument
from authz_service.telemetry import PoolStats, Telemetry
from authz_service.telemetry.endpoint import parse_listen
from tests.telemetry.conftest import SERVICE, Harness, value

pytestmark = pytest.mark.timeout(60)

HANDLED = "grpc_server_handled_total"


def handled(service: str, method: str, code: str, rpc_type: str = "unary") -> dict[str, str]:
    return {
        "grpc_service": service,
        "grpc_method": method,
        "grpc_type": rpc_type,
        "grpc_code": code,
    }


async def test_requests_counted_by_method_and_code(harness: Harness) -> None:
    health = harness.health()
    for _ in range(3):
        await health.Check(health_pb2.HealthCheckRequest(service=""))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await health.Check(health_pb2.HealthCheckRequest(service="nope"))
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    unary = harness.unary()
    await unary(b"hello")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await unary(b"abort")
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "bad `abort`"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await unary(b"boom")
    assert err.value.code() is grpc.StatusCode.UNKNOWN
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await unary(b"not-found")
    assert err.value.code() is grpc.StatusCode.NOT_FOUND

    s = await harness.samples()
    h = "grpc.health.v1.Health"
    assert value(s, HANDLED, **handled(h, "Check", "OK")) == 3
    assert value(s, HANDLED, **handled(h, "Check", "NOT_FOUND")) == 1
    assert value(s, HANDLED, **handled(SERVICE, "Unary", "OK")) == 1
    assert value(s, HANDLED, **handled(SERVICE, "Unary", "INVALID_ARGUMENT")) == 1
    assert value(s, HANDLED, **handled(SERVICE, "Unary", "UNKNOWN")) == 1
    assert value(s, HANDLED, **handled(SERVICE, "Unary", "NOT_FOUND")) == 1
    latency = {"grpc_service": h, "grpc_method": "Check", "grpc_type": "unary"}
    assert value(s, "grpc_server_handling_seconds_count", **latency) == 4
    assert value(s, "grpc_server_handling_seconds_bucket", **latency, le="+Inf") == 4
    assert value(s, "grpc_server_handling_seconds_sum", **latency) > 0
    # Bounded label values only, and no `_created` series.
    assert not any(name.endswith("_created") for name, _ in s)


async def test_streams_counted_when_they_end(harness: Harness) -> None:
    assert [m async for m in harness.stream()(b"3")] == [b"0", b"1", b"2"]
    assert [m async for m in harness.stream("StreamWriter")(b"2")] == [b"0", b"1"]
    call = harness.stream()(b"2:abort")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION

    s = await harness.samples()
    st = "server_stream"
    assert value(s, HANDLED, **handled(SERVICE, "Stream", "OK", st)) == 1
    assert value(s, HANDLED, **handled(SERVICE, "StreamWriter", "OK", st)) == 1
    assert value(s, HANDLED, **handled(SERVICE, "Stream", "FAILED_PRECONDITION", st)) == 1


async def test_cancelled_stream_closes_its_generator_and_is_counted(harness: Harness) -> None:
    call = harness.stream("Forever")(b"")
    assert await call.read() == b"tick"
    call.cancel()
    await harness.echo.forever_closed.wait()  # the interceptor has recorded by then
    s = await harness.samples()
    labels = handled(SERVICE, "Forever", "CANCELLED", "server_stream")
    assert value(s, HANDLED, **labels) == 1


async def test_cancelled_and_deadline_exceeded_calls(harness: Harness) -> None:
    call = harness.channel.unary_unary(f"/{SERVICE}/Hang")(b"")
    await harness.echo.hang_entered.wait()
    call.cancel()
    await harness.echo.hang_exited.wait()  # the interceptor has recorded by then
    harness.echo.hang_entered.clear()
    harness.echo.hang_exited.clear()

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.channel.unary_unary(f"/{SERVICE}/Hang")(b"", timeout=0.2)
    assert err.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await harness.echo.hang_exited.wait()

    s = await harness.samples()
    assert value(s, HANDLED, **handled(SERVICE, "Hang", "CANCELLED")) == 1
    assert value(s, HANDLED, **handled(SERVICE, "Hang", "DEADLINE_EXCEEDED")) == 1


async def test_unknown_methods_are_not_labelled(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.channel.unary_unary("/test.Echo/Nope")(b"")
    assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    s = await harness.samples()
    assert not any(dict(labels).get("grpc_method") == "Nope" for _, labels in s)


@dataclass(frozen=True)
class FakeCacheStats:
    hits: int = 10
    misses: int = 4
    evictions: int = 1
    size: int = 3
    maxsize: int = 100


@dataclass(frozen=True)
class FakeLogStats:
    queued: int = 2
    appended: int = 12
    written: int = 10
    batches: int = 4
    fsyncs: int = 5
    fsync_seconds_last: float = 0.002
    fsync_seconds_avg: float = 0.0025
    checkpoints: int = 1
    rejected: int = 0
    dropped: int = 0
    mirror_errors: int = 0


async def test_decisions_and_callback_metrics(harness: Harness) -> None:
    t = harness.telemetry
    for outcome, hit in [("ALLOWED", True), ("ALLOWED", True), ("DENIED", False)]:
        t.record_decision(outcome, hit)
    t.record_decision("CONDITIONAL", False)
    t.record_decision("ERROR", False)
    t.record_decision("DENIED", True, 40)  # CheckBulk counts its items in one update
    t.register_cache(FakeCacheStats)
    t.register_log(FakeLogStats)
    t.register_pool(lambda: PoolStats(size=4, free=3, max_size=10))

    s = await harness.samples()
    d = "authz_decisions_total"
    assert value(s, d, outcome="ALLOWED", cache_hit="true") == 2
    assert value(s, d, outcome="DENIED", cache_hit="false") == 1
    assert value(s, d, outcome="DENIED", cache_hit="true") == 40
    assert value(s, d, outcome="CONDITIONAL", cache_hit="false") == 1
    assert value(s, d, outcome="ERROR", cache_hit="false") == 1
    assert (d, frozenset({("outcome", "ALLOWED"), ("cache_hit", "false")})) in s  # pre-bound
    assert value(s, "authz_cache_hits_total") == 10
    assert value(s, "authz_cache_misses_total") == 4
    assert value(s, "authz_cache_evictions_total") == 1
    assert value(s, "authz_cache_entries") == 3
    assert value(s, "authz_cache_capacity") == 100
    assert value(s, "authz_decision_log_queue_depth") == 2
    assert value(s, "authz_decision_log_records_written_total") == 10
    assert value(s, "authz_decision_log_fsyncs_total") == 5
    assert value(s, "authz_decision_log_fsync_seconds_total") == pytest.approx(0.01)
    assert value(s, "authz_decision_log_fsync_seconds_last") == pytest.approx(0.002)
    assert value(s, "authz_decision_log_dropped_total") == 0
    assert value(s, "authz_db_pool_connections") == 4
    assert value(s, "authz_db_pool_free_connections") == 3
    assert value(s, "authz_db_pool_max_connections") == 10
    assert value(s, "process_cpu_seconds_total") >= 0


@dataclass(frozen=True)
class FakeReplicaStats:
    name: str
    usable: bool
    lag_s: float | None
    reads: int
    behind: int
    errors: int


async def test_read_replicas_are_labelled_by_name(harness: Harness) -> None:
    harness.telemetry.register_replicas(
        lambda: [
            FakeReplicaStats("r1:5432/authz", True, 0.25, 7, 2, 0),
            FakeReplicaStats("r2:5432/authz", False, None, 0, 0, 3),
        ]
    )
    s = await harness.samples()
    assert value(s, "authz_replica_usable", replica="r1:5432/authz") == 1
    assert value(s, "authz_replica_usable", replica="r2:5432/authz") == 0
    assert value(s, "authz_replica_lag_seconds", replica="r1:5432/authz") == 0.25
    lags = [labels for name, labels in s if name == "authz_replica_lag_seconds"]
    assert lags == [frozenset({("replica", "r1:5432/authz")})]  # no figure for r2
    assert value(s, "authz_replica_reads_total", replica="r1:5432/authz") == 7
    assert value(s, "authz_replica_not_replayed_total", replica="r1:5432/authz") == 2
    assert value(s, "authz_replica_errors_total", replica="r2:5432/authz") == 3


async def test_failing_stats_function_costs_only_its_own_metrics(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> PoolStats:
        raise RuntimeError("pool is gone")

    harness.telemetry.register_pool(broken)
    harness.telemetry.register_cache(FakeCacheStats)
    s = await harness.samples()
    assert value(s, "authz_cache_hits_total") == 10
    assert not any(name.startswith("authz_db_pool") for name, _ in s)
    assert "reading database pool stats for metrics failed" in caplog.text


async def test_endpoint_answers_only_metrics(harness: Harness) -> None:
    url = f"http://127.0.0.1:{harness.telemetry.bound_metrics_port}/other"

    def get() -> int:
        try:
            urllib.request.urlopen(url, timeout=10)
        except urllib.error.HTTPError as e:
            return e.code
        return 200

    assert await asyncio.to_thread(get) == 404


async def test_openmetrics_format_on_request(harness: Harness) -> None:
    url = f"http://127.0.0.1:{harness.telemetry.bound_metrics_port}/metrics"

    def get() -> tuple[str, str]:
        req = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.headers["Content-Type"], r.read().decode()

    content_type, body = await asyncio.to_thread(get)
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


async def test_no_endpoint_without_address_and_worker_offset() -> None:
    t = await Telemetry.start("")
    assert t.bound_metrics_port is None
    t.record_decision("ALLOWED", True)  # still recorded, just not served
    await t.aclose()

    probe = await Telemetry.start("127.0.0.1:0")
    port = probe.bound_metrics_port
    assert port
    await probe.aclose()  # a port that was free a moment ago
    t = await Telemetry.start(f"127.0.0.1:{port - 1}", worker=1)
    try:
        assert t.bound_metrics_port == port
    finally:
        await t.aclose()
        await t.aclose()  # idempotent


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen(":9464") == ("0.0.0.0", 9464)
    for bad in ("9464", "host:", "host:http", "h:70000"):
        with pytest.raises(InvalidArgument, match="metrics address"):
            parse_listen(bad)
