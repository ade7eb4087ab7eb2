"""Telemetry: Prometheus metrics, OpenTelemetry traces, JSON logs with request ids.

    telemetry = await Telemetry.start("127.0.0.1:9464", trace_ratio=0.01)
    server = grpc.aio.server(interceptors=[telemetry.interceptor])
    with span("engine.check", permission="view"):   # no-op unless the call is sampled
        ...
    log.info("...")   # carries the call's request id once configure_logging() ran

See docs/telemetry.md for metric names, tracing settings and the log format.
"""

from authz_service.telemetry.callbacks import CacheStatsLike, LogStatsLike, PoolStats
from authz_service.telemetry.context import REQUEST_ID_HEADER, current_request_id, new_request_id
from authz_service.telemetry.endpoint import MetricsEndpoint
from authz_service.telemetry.interceptor import TelemetryInterceptor
from authz_service.telemetry.logging import JsonFormatter, TextFormatter, configure_logging
from authz_service.telemetry.metrics import LATENCY_BUCKETS, OUTCOMES, Metrics
from authz_service.telemetry.setup import Telemetry
from authz_service.telemetry.tracing import Tracing, setup_tracing, span

__all__ = [
    "LATENCY_BUCKETS",
    "OUTCOMES",
    "REQUEST_ID_HEADER",
    "CacheStatsLike",
    "JsonFormatter",
    "LogStatsLike",
    "Metrics",
    "MetricsEndpoint",
    "PoolStats",
    "Telemetry",
    "TelemetryInterceptor",
    "TextFormatter",
    "Tracing",
    "configure_logging",
    "current_request_id",
    "new_request_id",
    "setup_tracing",
    "span",
]
