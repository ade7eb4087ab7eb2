"""The request id of the call being served, for logs and the decision log.

The interceptor sets it once per call; anything running in that call's task (servicer,
engine, store, log records) reads it with `current_request_id()`. Each grpc.aio call
runs in its own asyncio task with its own copy of the context, so the value never
leaks into another call.
"""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar

__all__ = ["REQUEST_ID_HEADER", "current_request_id", "new_request_id", "request_id_var"]

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128

request_id_var: ContextVar[str | None] = ContextVar("authz_request_id", default=None)

# A random per-process prefix plus a counter: unique across workers and restarts in
# practice, and about ten times cheaper than uuid4 (no system call per id). Request ids
# correlate log lines; they are not secrets and need not be unguessable.
_PREFIX = os.urandom(6).hex()
_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_counter):08x}"


def current_request_id() -> str | None:
    return request_id_var.get()
