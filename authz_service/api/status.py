"""The one place where errors become gRPC statuses.

Bad input carries a google.rpc.BadRequest naming the field and the value, so clients in
any language can show which part of the request was wrong; so does a failed condition
that belongs to one field (a write precondition, a reused idempotency key). Unexpected exceptions become
INTERNAL with a generic message; details go to the server log, never to the caller.

Messages quote caller values through `errors.echo` (64 characters at most); as a last
guard a message is cut at MAX_MESSAGE_BYTES here, so a status trailer (message, plus the
BadRequest detail repeating it) stays far below the 8 KiB of metadata a gRPC client
accepts by default. Above that a client reports RESOURCE_EXHAUSTED, which reads as
"retry with backoff" instead of "fix the request".
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from authz_service import errors

__all__ = ["MAX_MESSAGE_BYTES", "status_proto", "to_status"]

MAX_MESSAGE_BYTES = 1024

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[errors.AuthzError], int], ...] = (
    (errors.InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (errors.NotFound, code_pb2.NOT_FOUND),
    (errors.AlreadyExists, code_pb2.ALREADY_EXISTS),
    (errors.FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (errors.LimitExceeded, code_pb2.RESOURCE_EXHAUSTED),
    (errors.DeadlineExceeded, code_pb2.DEADLINE_EXCEEDED),
    (errors.Unavailable, code_pb2.UNAVAILABLE),
    (errors.Unauthenticated, code_pb2.UNAUTHENTICATED),
    (errors.PermissionDenied, code_pb2.PERMISSION_DENIED),
)


def to_status(exc: BaseException) -> grpc.Status:
    """Map any exception to a status suitable for `context.abort_with_status`."""
    return rpc_status.to_status(status_proto(exc))


def status_proto(exc: BaseException) -> status_pb2.Status:
    """The google.rpc.Status for an exception: a whole call's or one batch item's."""
    if isinstance(exc, errors.AuthzError):
        for kind, code in _CODES:
            if isinstance(exc, kind):
                return _status_message(code, exc)
    log.exception("internal error", exc_info=exc)
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")


def _capped(text: str) -> str:
    raw = text.encode()
    if len(raw) <= MAX_MESSAGE_BYTES:
        return text
    return raw[: MAX_MESSAGE_BYTES - 3].decode(errors="ignore") + "…"


def _status_message(code: int, exc: errors.AuthzError) -> status_pb2.Status:
    text = _capped(exc.message)
    message = status_pb2.Status(code=code, message=text)
    # A failed condition names its field too (`preconditions[i]`, `idempotency_key`).
    if isinstance(exc, errors.InvalidArgument | errors.FailedPrecondition) and exc.field:
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=exc.field[:200], description=text
                    )
                ]
            )
        )
        message.details.append(detail)
    return message
