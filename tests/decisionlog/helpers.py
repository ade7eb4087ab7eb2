"""Helpers for decision log tests: records, writing, raw line surgery, waiting."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from authz_service.decisionlog import (
    Decision,
    DecisionKind,
    DecisionLogConfig,
    DecisionLogWriter,
    DecisionRecord,
    new_decision_id,
)
from authz_service.decisionlog.layout import list_segments, stream_dir_name

BASE_TIME = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def make_record(i: int = 0, tenant: str = "acme", **overrides: Any) -> DecisionRecord:
    at = overrides.pop("time", BASE_TIME + timedelta(milliseconds=i))
    fields: dict[str, Any] = {
        "decision_id": new_decision_id(at),
        "time": at,
        "tenant": tenant,
        "kind": DecisionKind.CHECK,
        "subject": f"user:u{i % 7}",
        "action": "read" if i % 2 else "write",
        "resource": f"document:d{i}",
        "decision": Decision.ALLOWED if i % 3 else Decision.DENIED,
        "revision": 10 + i,
        "schema_version": "s1",
        "server_version": "0.1.0",
        "context": {"ip": "10.0.0.1", "n": i},
        "explanation": {"path": ["document:d#viewer@user:u"]} if i % 3 else {"code": "NO_PATH"},
        "latency_us": 120,
    }
    fields.update(overrides)
    return DecisionRecord(**fields)


async def write_records(
    config: DecisionLogConfig, count: int, tenants: tuple[str, ...] = ("acme",)
) -> list[DecisionRecord]:
    records = [make_record(i, tenants[i % len(tenants)]) for i in range(count)]
    async with DecisionLogWriter(config) as writer:
        for record in records:
            await writer.append(record)
    return records


def stream_dir(config: DecisionLogConfig, tenant: str = "acme") -> Path:
    return config.root / stream_dir_name(tenant)


def segments(config: DecisionLogConfig, tenant: str = "acme") -> list[Path]:
    return [path for _, path in list_segments(stream_dir(config, tenant))]


def read_all_lines(config: DecisionLogConfig, tenant: str = "acme") -> list[bytes]:
    return [line for path in segments(config, tenant) for line in path.read_bytes().splitlines()]


def rewrite_single_segment(config: DecisionLogConfig, lines: list[bytes]) -> Path:
    (path,) = segments(config)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def decode(line: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(line)
    return data


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> float:
    """Poll `condition` until true; return the seconds it took. Fails after `within` seconds."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return time.monotonic() - started
            await asyncio.sleep(0.002)
