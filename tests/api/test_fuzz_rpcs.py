"""Every RPC, fed random and broken bodies, answers with a deliberate status.

The methods come from the service descriptors the server registers (`SERVICE_NAMES`), so a
new RPC is fuzzed without touching this file. Bodies are sent raw (bytes in, bytes out)
to a real server on PostgreSQL with the decision log on. For every call: never INTERNAL
or UNKNOWN, a status trailer far below the 8 KiB a client accepts, no ERROR log record
and no traceback; afterwards the server still answers a well-formed Check.

The server runs on its own event loop in a helper thread, so that hypothesis drives plain
synchronous calls. Runtime is bounded by a fixed number of examples per method.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import descriptor_pool
from hypothesis import HealthCheck, given, settings

from authz_service.api.gen.authz.v1 import permissions_pb2, schema_pb2
from authz_service.api.server import SERVICE_NAMES
from authz_service.app import App
from tests.api.conftest import TEST_TENANTS, server_settings, start_app
from tests.api.fuzz_messages import bodies
from tests.api.helpers import DENIED, SCHEMA, obj, subj
from tests.pg import FreshDatabase

R = TypeVar("R")

EXAMPLES_PER_METHOD = 60
MAX_TRAILER_BYTES = 4096
# Long enough for any refusal; a stream that is still open after it (Watch waiting for
# changes) ends with DEADLINE_EXCEEDED, which is the caller's deadline, not a failure.
CALL_TIMEOUT_S = 1.0
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE}

METHODS = [
    method
    for name in SERVICE_NAMES
    for method in descriptor_pool.Default().FindServiceByName(name).methods
]


class _Errors(logging.Handler):
    """Collects ERROR records and records with a traceback, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


class ServerThread:
    """A real App over a fresh database, on an event loop in its own thread."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._db = FreshDatabase()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def __enter__(self) -> App:
        self._thread.start()
        dsn = self.run(self._db.__aenter__())
        settings = server_settings(dsn, self._data_dir, log_mode="buffered")
        # The control check below asks its own tenant, which fuzzed calls never name.
        self.app = self.run(start_app(settings, (*TEST_TENANTS, "fuzz-control")))
        return self.app

    def __exit__(self, *exc: object) -> None:
        self.run(self.app.stop(grace=1.0))
        self.run(self._db.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture(scope="module")
def errors_logged() -> Iterator[_Errors]:
    handler = _Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture(scope="module")
def channel(
    tmp_path_factory: pytest.TempPathFactory, errors_logged: _Errors
) -> Iterator[grpc.Channel]:
    with (
        ServerThread(tmp_path_factory.mktemp("fuzz")) as app,
        grpc.insecure_channel(f"127.0.0.1:{app.port}") as ch,
    ):
        _write_schema(ch)
        yield ch


def _write_schema(channel: grpc.Channel) -> None:
    channel.unary_unary(
        "/authz.v1.SchemaService/WriteSchema",
        request_serializer=schema_pb2.WriteSchemaRequest.SerializeToString,
        response_deserializer=schema_pb2.WriteSchemaResponse.FromString,
    )(schema_pb2.WriteSchemaRequest(schema=SCHEMA, force=True), timeout=10)


def _call(
    channel: grpc.Channel, path: str, streaming: bool, body: bytes
) -> tuple[grpc.StatusCode, str, int]:
    """Send `body`: the status code, its message and the size of the status trailer."""
    try:
        if streaming:
            for _ in channel.unary_stream(path)(body, timeout=CALL_TIMEOUT_S):
                pass
        else:
            channel.unary_unary(path)(body, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as err:
        details = err.details() or ""  # type: ignore[attr-defined]
        size = len(details.encode())
        for key, value in err.trailing_metadata() or ():  # type: ignore[attr-defined]
            size += len(key) + len(value)
        return err.code(), details, size  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, "", 0


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.full_name)
def test_every_rpc_answers_hostile_bodies_deliberately(
    channel: grpc.Channel, errors_logged: _Errors, method: Any
) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    codes: set[grpc.StatusCode] = set()

    @settings(
        max_examples=EXAMPLES_PER_METHOD,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies(method.input_type))
    def fuzz(body: bytes) -> None:
        errors_logged.records.clear()
        code, details, trailer = _call(channel, path, method.server_streaming, body)
        codes.add(code)
        assert code not in NEVER, (code, details)
        assert trailer < MAX_TRAILER_BYTES, (code, trailer)
        loud = [f"{r.name}: {r.getMessage()}" for r in errors_logged.records]
        assert not loud, loud

    fuzz()
    assert codes, "no call was made"
    _write_schema(channel)  # a fuzzed WriteSchema may have replaced it
    check = channel.unary_unary(
        "/authz.v1.PermissionsService/Check",
        request_serializer=permissions_pb2.CheckRequest.SerializeToString,
        response_deserializer=permissions_pb2.CheckResponse.FromString,
    )
    reply = check(
        permissions_pb2.CheckRequest(
            tenant="fuzz-control",
            resource=obj("document:x"),
            permission="view",
            subject=subj("user:nobody"),
        ),
        timeout=10,
    )
    assert reply.decision == DENIED
