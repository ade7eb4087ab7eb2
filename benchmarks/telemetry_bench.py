"""Telemetry overhead per call: metrics library choice, interceptor, span(), end to end.

    python benchmarks/telemetry_bench.py            # everything, about a minute
    python benchmarks/telemetry_bench.py --quick    # fewer repetitions, a smoke run

Sections, each with its baseline measured in the same run, interleaved round by round
so that drift (CPU frequency, other processes) hits every variant alike:

1. libs: three metric updates (what a Check records) with prometheus_client children
   bound once, with `.labels()` per call, and with the OpenTelemetry metrics SDK.
2. interceptor: `intercept_service` + the wrapped handler + `record_decision`, per call,
   run inside a live gRPC call so that the real ServicerContext is used, against the
   same trivial handler without the interceptor. Tracing off, 1% and 100% sampling
   (1% both without a parent and with an unsampled `traceparent`, as Envoy sends).
3. span: `span()` when tracing is off, when the call is not sampled, when it is.
4. e2e: server-process CPU time per loopback gRPC call, with and without the
   interceptor, each server in its own process and the client in this one: the
   overhead in the context of the ~400 µs gRPC cost (noisy on a busy machine).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from authz_service.telemetry import Telemetry, Tracing, span

METHOD = "/bench.Bench/Check"


class _Discard(SpanExporter):
    """Spans go through the batch processor as in production, then nowhere."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _stats(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    return statistics.median(ordered) / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def _row(name: str, median_us: float, p99_us: float, base: tuple[float, float] | None) -> str:
    extra = ""
    if base is not None:
        extra = (
            f"   overhead median {median_us - base[0]:+7.2f} µs  p99 {p99_us - base[1]:+7.2f} µs"
        )
    return f"  {name:<34} median {median_us:8.2f} µs  p99 {p99_us:8.2f} µs{extra}"


# --- 1. metric libraries -----------------------------------------------------------


def bench_libs(rounds: int, per_round: int) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    handled = Counter("h", "h", ["method", "code"], registry=registry)
    latency = Histogram("l", "l", ["method"], registry=registry)
    decisions = Counter("d", "d", ["outcome", "cache_hit"], registry=registry)
    h_child, l_child = handled.labels(METHOD, "OK"), latency.labels(METHOD)
    d_child = decisions.labels("ALLOWED", "true")

    def prom_bound() -> None:
        h_child.inc()
        l_child.observe(0.0003)
        d_child.inc()

    def prom_labels() -> None:
        handled.labels(METHOD, "OK").inc()
        latency.labels(METHOD).observe(0.0003)
        decisions.labels("ALLOWED", "true").inc()

    meter = MeterProvider(metric_readers=[PrometheusMetricReader()]).get_meter("bench")
    o_handled = meter.create_counter("h")
    o_latency = meter.create_histogram("l", unit="s")
    o_decisions = meter.create_counter("d")
    a_handled = {"rpc.method": METHOD, "rpc.grpc.status_code": "OK"}
    a_latency = {"rpc.method": METHOD}
    a_decision = {"outcome": "ALLOWED", "cache_hit": True}

    def otel_sdk() -> None:
        o_handled.add(1, a_handled)
        o_latency.record(0.0003, a_latency)
        o_decisions.add(1, a_decision)

    def nothing() -> None:
        pass

    variants: dict[str, Callable[[], None]] = {
        "baseline (empty function)": nothing,
        "prometheus_client, bound children": prom_bound,
        "prometheus_client, .labels() each": prom_labels,
        "OpenTelemetry SDK metrics": otel_sdk,
    }
    # Per round: the mean of `per_round` calls (one call is below timer resolution).
    means: dict[str, list[int]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            started = time.perf_counter_ns()
            for _ in range(per_round):
                fn()
            means[name].append((time.perf_counter_ns() - started) // per_round)
    print("1. metric libraries: 3 updates per Check (per-call mean of each round)")
    base = _stats(means["baseline (empty function)"])
    for name, samples in means.items():
        print(_row(name, *_stats(samples), None if name.startswith("baseline") else base))


# --- 2 and 3: interceptor and span(), inside a live call -------------------------------


async def _trivial(request: bytes, context: Any) -> bytes:
    return request


class _Details:
    def __init__(self, method: str, metadata: Any) -> None:
        self.method = method
        self.invocation_metadata = metadata


async def _run_inside_call(
    body: Callable[[Any], Awaitable[None]], metadata: Sequence[tuple[str, str]] = ()
) -> None:
    """Start a server whose one handler runs `body(context)`; call it once."""
    handler = grpc.method_handlers_generic_handler(
        "bench.Runner", {"Run": grpc.unary_unary_rpc_method_handler(_runner(body))}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.unary_unary("/bench.Runner/Run")(b"", metadata=tuple(metadata))
    finally:
        await server.stop(None)


def _runner(body: Callable[[Any], Awaitable[None]]) -> Callable[[bytes, Any], Awaitable[bytes]]:
    async def run(request: bytes, context: Any) -> bytes:
        await body(context)
        return b""

    return run


async def bench_interceptor(rounds: int, per_round: int) -> None:
    base_handler = grpc.unary_unary_rpc_method_handler(_trivial)

    async def continuation(details: Any) -> Any:
        return base_handler

    configs: dict[str, Telemetry | None] = {"baseline (no interceptor)": None}
    for label, ratio in (("tracing off", 0.0), ("1% sampling", 0.01), ("100% sampling", 1.0)):
        configs[label] = await Telemetry.start("", ratio, span_exporter=_Discard())
    envoy = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    samples: dict[str, list[int]] = {}
    metadata_variants = {"": (), " + unsampled traceparent": (("traceparent", envoy),)}

    for suffix, metadata in metadata_variants.items():

        async def body(context: Any, metadata: Any = metadata, suffix: str = suffix) -> None:
            details = _Details(METHOD, context.invocation_metadata())
            for _ in range(rounds):
                for label, telemetry in configs.items():
                    if suffix and label != "1% sampling":
                        continue
                    out = samples.setdefault(label + suffix, [])
                    clock = time.perf_counter_ns
                    if telemetry is None:
                        for _ in range(per_round):
                            t0 = clock()
                            handler = await continuation(details)
                            await handler.unary_unary(b"x", context)
                            out.append(clock() - t0)
                    else:
                        intercept = telemetry.interceptor.intercept_service
                        record = telemetry.record_decision
                        for _ in range(per_round):
                            t0 = clock()
                            handler = await intercept(continuation, details)
                            await handler.unary_unary(b"x", context)
                            record("ALLOWED", True)
                            out.append(clock() - t0)
                        # Each wrapped call made its span current and restored it.
                        assert not trace.get_current_span().is_recording()

        await _run_inside_call(body, metadata)

    print("2. interceptor + record_decision per call (real ServicerContext)")
    base = _stats(samples["baseline (no interceptor)"])
    for label, data in samples.items():
        print(_row(label, *_stats(data), None if label.startswith("baseline") else base))
    for telemetry in configs.values():
        if telemetry is not None:
            await telemetry.aclose()


def bench_span(rounds: int, per_round: int) -> None:
    def measure(fn: Callable[[], None]) -> list[int]:
        out = []
        for _ in range(rounds):
            started = time.perf_counter_ns()
            for _ in range(per_round):
                fn()
            out.append((time.perf_counter_ns() - started) // per_round)
        return out

    def use_span() -> None:
        with span("engine.check", permission="view"):
            pass

    results: dict[str, list[int]] = {}
    results["tracing off"] = measure(use_span)
    tracing = Tracing(1.0, _Discard())
    tracing.activate()
    results["tracing on, call not sampled"] = measure(use_span)
    root = tracing.tracer.start_span("root")
    token = otel_context.attach(trace.set_span_in_context(root))
    try:
        results["tracing on, call sampled"] = measure(use_span)
    finally:
        otel_context.detach(token)
        root.end()
        tracing.shutdown()
    print("3. span() context manager (per-call mean of each round)")
    for label, data in results.items():
        print(_row(label, *_stats(data), None))


# --- 4. end to end ----------------------------------------------------------------------


async def _cpu(request: bytes, context: Any) -> bytes:
    return str(time.process_time()).encode()


class _NoopInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """What grpc's interceptor path costs by itself."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        return await continuation(details)


async def _serve(ratio: float | str | None, port_out: Connection) -> None:
    """One server process: `Check` echoes, `Cpu` reports the process's CPU seconds."""
    interceptors: list[Any] = []
    if ratio == "noop":
        interceptors.append(_NoopInterceptor())
    elif isinstance(ratio, float):
        telemetry = await Telemetry.start("", ratio, span_exporter=_Discard())
        interceptors.append(telemetry.interceptor)
    server = grpc.aio.server(interceptors=interceptors)
    methods = {
        "Check": grpc.unary_unary_rpc_method_handler(_trivial),
        "Cpu": grpc.unary_unary_rpc_method_handler(_cpu),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Bench", methods),))
    port_out.send(server.add_insecure_port("127.0.0.1:0"))
    await server.start()
    await server.wait_for_termination()


def _server_process(ratio: float | str | None, port_out: Connection) -> None:
    asyncio.run(_serve(ratio, port_out))


async def bench_e2e(rounds: int, per_round: int) -> None:
    configs: dict[str, float | str | None] = {
        "baseline (no interceptor)": None,
        "no-op interceptor": "noop",
        "tracing off": 0.0,
        "1% sampling": 0.01,
    }
    ctx = multiprocessing.get_context("spawn")
    procs, stubs, cpus, channels = [], {}, {}, []
    try:
        for label, ratio in configs.items():
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_server_process, args=(ratio, send), daemon=True)
            proc.start()
            procs.append(proc)
            port = await asyncio.to_thread(receive.recv)
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            channels.append(channel)
            stubs[label] = channel.unary_unary(METHOD)
            cpus[label] = channel.unary_unary("/bench.Bench/Cpu")
            for _ in range(300):  # connect and warm up
                await stubs[label](b"x")
        cpu: dict[str, list[float]] = {label: [] for label in configs}
        for _ in range(rounds):
            order = list(configs)
            random.shuffle(order)
            for label in order:
                before = float(await cpus[label](b""))
                for _ in range(per_round):
                    await stubs[label](b"x")
                after = float(await cpus[label](b""))
                cpu[label].append((after - before) / per_round * 1e6)
    finally:
        for channel in channels:
            await channel.close()
        for proc in procs:
            proc.terminate()
            proc.join()
    print("4. end to end: server process CPU µs per loopback call (client in another process)")
    print("   (overhead: median over rounds of the difference to the same round's baseline)")
    base = cpu["baseline (no interceptor)"]
    for label, data in cpu.items():
        line = f"  {label:<34} median {statistics.median(data):8.1f} µs"
        if not label.startswith("baseline"):
            diffs = sorted(x - b for x, b in zip(data, base, strict=True))
            q1, q3 = diffs[len(diffs) // 4], diffs[3 * len(diffs) // 4]
            line += f"   overhead {statistics.median(diffs):+6.1f} µs (IQR {q1:+.1f} to {q3:+.1f})"
        print(line)


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--only", choices=["libs", "interceptor", "span", "e2e"], help="one section only"
    )
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    random.seed(1)
    print(f"python {sys.version.split()[0]}, grpcio {grpc.__version__}")
    if args.only in (None, "libs"):
        bench_libs(rounds=200 // scale, per_round=2000)
    if args.only in (None, "interceptor"):
        await bench_interceptor(rounds=50 // scale, per_round=2000)
    if args.only in (None, "span"):
        bench_span(rounds=200 // scale, per_round=2000)
    if args.only in (None, "e2e"):
        await bench_e2e(rounds=60 // scale, per_round=1000)


if __name__ == "__main__":
    asyncio.run(main())
