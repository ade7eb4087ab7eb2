"""Process logging: one JSON object per line, or plain text for a terminal.

A JSON line has `time` (UTC, ISO 8601, milliseconds), `level`, `logger`, `message`,
`request_id` (null outside a call), `trace_id`/`span_id` when the call is sampled,
`exception` when there is one, and every field passed with `extra=`:

    log.info("schema written", extra={"tenant": "acme", "version": 7})
    {"time": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "authz.schema",
     "message": "schema written", "request_id": "9f1c...-0000002a",
     "tenant": "acme", "version": 7}

Values JSON cannot represent are written with `str()`.
"""

from __future__ import annotations

import json as _json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from authz_service.telemetry.context import request_id_var

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

# The CEL library logs a warning for every failing function call, which a caveat on
# a hot path turns into a flood; the evaluation error reaches the caller anyway.
_QUIET = {"cel": logging.ERROR}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id]: message`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return super().format(record)


def configure_logging(
    level: str | int = "INFO", json: bool = True, stream: TextIO | None = None
) -> None:
    """Replace the root logger's handlers with one writing to `stream` (stderr)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet_level in _QUIET.items():
        logging.getLogger(name).setLevel(quiet_level)
