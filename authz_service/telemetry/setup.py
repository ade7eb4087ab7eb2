"""`Telemetry`: what the app creates once per worker process.

telemetry = await Telemetry.start(settings.metrics_listen, settings.trace_ratio, worker=n)
server = build_server(..., interceptors=[telemetry.interceptor])
telemetry.register_cache(cache.stats)
telemetry.register_log(writer.stats)
telemetry.register_pool(lambda: PoolStats(pool.get_size(), pool.get_idle_size(),
                                          pool.get_max_size()))
telemetry.record_decision(result.decision.value, cache_hit)   # per decision
...
await telemetry.aclose()
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from authz_service.errors import InvalidArgument, echo
from authz_service.telemetry.callbacks import (
    CacheStatsLike,
    IndexStatsLike,
    LogStatsLike,
    PoolStats,
    ReplicaStatsLike,
    StatsFn,
)
from authz_service.telemetry.endpoint import MetricsEndpoint, parse_listen
from authz_service.telemetry.interceptor import TelemetryInterceptor
from authz_service.telemetry.metrics import Metrics
from authz_service.telemetry.tracing import Tracing

__all__ = ["Telemetry"]


def _exporter(exporter: str | SpanExporter | None) -> SpanExporter | None:
    if exporter is None or isinstance(exporter, SpanExporter):
        return exporter
    if exporter in ("", "none"):
        return None
    if exporter == "console":
        return ConsoleSpanExporter()
    raise InvalidArgument(
        f"span exporter `{echo(exporter)}` is not one of none, console",
        field="trace_exporter",
        value=exporter,
    )


class Telemetry:
    """Metrics, the scrape endpoint, tracing and the interceptor of one worker."""

    def __init__(self, metrics: Metrics, tracing: Tracing, endpoint: MetricsEndpoint | None):
        self.metrics = metrics
        self.tracing = tracing
        self.interceptor = TelemetryInterceptor(metrics, tracing)
        self._endpoint = endpoint
        # Bound directly: record_decision runs once per decision.
        self.record_decision = metrics.record_decision

    @classmethod
    async def start(
        cls,
        metrics_listen: str = "",
        trace_ratio: float = 0.0,
        *,
        worker: int = 0,
        span_exporter: str | SpanExporter | None = None,
        metrics_tls: ssl.SSLContext | None = None,
    ) -> Telemetry:
        """Serve `/metrics` on `metrics_listen` (none when empty) and set up tracing.

        With several workers each serves its own endpoint on `port + worker`
        (port 0 picks a free port for each). `span_exporter` is `none`, `console` or
        a SpanExporter instance (tests pass an in-memory one). `metrics_tls`: serve the
        endpoint over TLS with that context.
        """
        metrics = Metrics()
        endpoint = None
        if metrics_listen:
            host, port = parse_listen(metrics_listen)
            endpoint = await MetricsEndpoint.start(
                host, port + worker if port else 0, metrics.registry, tls=metrics_tls
            )
        tracing = Tracing(trace_ratio, _exporter(span_exporter))
        tracing.activate()
        return cls(metrics, tracing, endpoint)

    @property
    def bound_metrics_port(self) -> int | None:
        """The scrape endpoint's port (the real one when 0 was asked), None if not serving."""
        return self._endpoint.port if self._endpoint is not None else None

    def register_cache(self, stats: StatsFn[CacheStatsLike]) -> None:
        self.metrics.register_cache(stats)

    def register_log(self, stats: StatsFn[LogStatsLike]) -> None:
        self.metrics.register_log(stats)

    def register_pool(self, stats: StatsFn[PoolStats]) -> None:
        self.metrics.register_pool(stats)

    def register_index(self, stats: StatsFn[IndexStatsLike]) -> None:
        self.metrics.register_index(stats)

    def register_replicas(self, stats: StatsFn[Sequence[ReplicaStatsLike]]) -> None:
        self.metrics.register_replicas(stats)

    async def aclose(self) -> None:
        """Stop serving metrics, export the spans still buffered, stop tracing."""
        if self._endpoint is not None:
            endpoint, self._endpoint = self._endpoint, None
            await endpoint.aclose()
        await asyncio.to_thread(self.tracing.shutdown)
