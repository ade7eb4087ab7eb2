"""The package's public names are a contract with the app: pinned here."""

from __future__ import annotations

from authz_service import telemetry


def test_public_names() -> None:
    assert sorted(telemetry.__all__) == [
        "CacheStatsLike",
        "JsonFormatter",
        "LATENCY_BUCKETS",
        "LogStatsLike",
        "Metrics",
        "MetricsEndpoint",
        "OUTCOMES",
        "PoolStats",
        "REQUEST_ID_HEADER",
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
    for name in telemetry.__all__:
        assert getattr(telemetry, name) is not None
