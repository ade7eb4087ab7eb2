"""The service's metrics, recorded with prometheus_client directly.

Why not the OpenTelemetry metrics SDK: a Check records three updates on the hot path
(request counter, latency histogram, decision counter). Measured on the project's
2-core machine (`python benchmarks/telemetry_bench.py --only libs`, median per Check
over 200 rounds; two runs, the machine shared with other work):

    prometheus_client, children bound once            1.6-2.8 µs
    prometheus_client, `.labels(...)` on every call   4.7-8.5 µs
    OpenTelemetry SDK + Prometheus exporter           19-36 µs

The gRPC layer alone costs about 400 µs of CPU per call, so the SDK would add 5-9%
to every cached Check while prometheus_client adds under 1%. Profiled, the SDK's cost is
in validating and hashing the attribute set on every `add`/`record` and in several
layers of dispatch; it has no bound-instrument API to avoid that. Traces still use the OpenTelemetry
SDK (see `tracing`), where deciding the sampling first keeps unsampled calls cheap.

Hot-path children (one per method, status code, outcome) are bound once and kept in
dicts, so recording is a dict lookup plus `inc`/`observe`. Label values come only from
registered method names, gRPC status codes and decision outcomes: no tenant, subject
or resource ever becomes a label, so the series count stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from authz_service.telemetry.callbacks import (
    CacheStatsLike,
    CallbackCollector,
    IndexStatsLike,
    LogStatsLike,
    PoolStats,
    ReplicaStatsLike,
    StatsFn,
)

__all__ = ["LATENCY_BUCKETS", "OUTCOMES", "MethodMetrics", "Metrics"]

# Seconds. Cached checks finish in a few hundred microseconds, uncached ones in
# milliseconds, lookups and batch calls may take seconds.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

OUTCOMES = ("ALLOWED", "DENIED", "CONDITIONAL", "ERROR")

# go-grpc-prometheus names, which existing dashboards understand.
RPC_TYPES = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}


class MethodMetrics:
    """The bound children of one gRPC method; `observe` is the per-call hot path."""

    __slots__ = ("_by_code", "_handled", "_labels", "_latency")

    def __init__(self, handled: Counter, latency: Histogram, labels: tuple[str, str, str]):
        self._handled = handled
        self._labels = labels
        self._latency = latency.labels(*labels)
        self._by_code: dict[grpc.StatusCode, Counter] = {}

    def observe(self, code: grpc.StatusCode, seconds: float) -> None:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._handled.labels(*self._labels, code.name)
        child.inc()
        self._latency.observe(seconds)


class Metrics:
    """One registry per worker process, scraped through `MetricsEndpoint`."""

    def __init__(self) -> None:
        # `_created` series double the series count and no dashboard of ours reads them.
        # The switch is process-wide; this module owns the process's metrics.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._handled = Counter(
            "grpc_server_handled",
            "gRPC calls completed, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from the handler's start to its last response, by method.",
            ["grpc_service", "grpc_method", "grpc_type"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._decisions = Counter(
            "authz_decisions",
            "Decisions by outcome and whether the decision cache answered.",
            ["outcome", "cache_hit"],
            registry=self.registry,
        )
        self._decision_children: dict[tuple[str, bool], Counter] = {
            (outcome, hit): self._decisions.labels(outcome, "true" if hit else "false")
            for outcome in OUTCOMES
            for hit in (False, True)
        }
        self._auth_failures = Counter(
            "authz_auth_failures",
            "Failed authentications: `refused` (bad, unknown, revoked or expired key) and "
            "`limited` (refused unchecked while the peer or key id backs off).",
            ["reason"],
            registry=self.registry,
        )
        self._callbacks = CallbackCollector()
        self.registry.register(self._callbacks)

    def method(
        self, full_method: str, request_streaming: bool, response_streaming: bool
    ) -> MethodMetrics:
        """Children for `/package.Service/Method`; call once per method, not per call."""
        service, _, name = full_method.lstrip("/").rpartition("/")
        rpc_type = RPC_TYPES[request_streaming, response_streaming]
        return MethodMetrics(self._handled, self._latency, (service, name, rpc_type))

    def record_decision(self, outcome: str, cache_hit: bool, count: int = 1) -> None:
        child = self._decision_children.get((outcome, cache_hit))
        if child is None:  # an outcome added later: still counted, just not pre-bound
            child = self._decision_children[outcome, cache_hit] = self._decisions.labels(
                outcome, "true" if cache_hit else "false"
            )
        child.inc(count)

    def record_auth_failure(self, reason: str) -> None:
        self._auth_failures.labels(reason).inc()

    def register_cache(self, stats: StatsFn[CacheStatsLike]) -> None:
        self._callbacks.cache = stats

    def register_log(self, stats: StatsFn[LogStatsLike]) -> None:
        self._callbacks.log = stats

    def register_pool(self, stats: StatsFn[PoolStats]) -> None:
        self._callbacks.pool = stats

    def register_index(self, stats: StatsFn[IndexStatsLike]) -> None:
        self._callbacks.index = stats

    def register_replicas(self, stats: StatsFn[Sequence[ReplicaStatsLike]]) -> None:
        self._callbacks.replicas = stats
