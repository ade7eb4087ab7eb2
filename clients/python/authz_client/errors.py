"""The client's exceptions: one root, one class per gRPC status code a caller acts on.

    AuthzClientError                 root: catch this to catch everything the client raises
    ├── TextFormError                a text form (`document:1`, `doc:1#viewer@user:alice`)
    │                                did not parse; raised before any call (also ValueError)
    └── RpcError                     a call failed; carries code, message, field violations
        ├── InvalidArgumentError     bad input; `field_violations` names the fields
        ├── FailedPreconditionError  token of another tenant, failed precondition, ...
        ├── NotFoundError
        ├── AlreadyExistsError       CREATE of a relationship that exists
        ├── UnauthenticatedError
        ├── PermissionDeniedError    the credential may not make the call (never a decision)
        ├── ResourceExhaustedError   an evaluation limit, or the server is overloaded
        ├── DeadlineExceededError
        └── UnavailableError         still unavailable after the client's retries

Any other code (INTERNAL, UNKNOWN, ...) is raised as a plain RpcError. Whatever the
class, an error is never a decision: callers must treat it as "not allowed".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "AlreadyExistsError",
    "AuthzClientError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RpcError",
    "TextFormError",
    "UnauthenticatedError",
    "UnavailableError",
]

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class AuthzClientError(Exception):
    """Root of every exception the client raises."""


class TextFormError(AuthzClientError, ValueError):
    """A text form given to a helper could not be parsed; no call was made."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One `google.rpc.BadRequest` violation: the request field path and what is wrong."""

    field: str
    description: str


class RpcError(AuthzClientError):
    """A call failed with a gRPC status other than OK."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: Iterable[FieldViolation] = (),
    ) -> None:
        self.code = code
        self.message = message
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)
        super().__init__(code, message, self.field_violations)

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.field_violations:
            fields = "; ".join(f"{v.field}: {v.description}" for v in self.field_violations)
            text += f" ({fields})"
        return text


class InvalidArgumentError(RpcError):
    """INVALID_ARGUMENT: the request is wrong; `field_violations` say where."""


class FailedPreconditionError(RpcError):
    """FAILED_PRECONDITION: a token of another tenant or too old, a failed precondition."""


class NotFoundError(RpcError):
    """NOT_FOUND: a named role, binding, schema version or decision does not exist."""


class AlreadyExistsError(RpcError):
    """ALREADY_EXISTS: for example CREATE of an existing relationship."""


class UnauthenticatedError(RpcError):
    """UNAUTHENTICATED: missing or invalid credentials."""


class PermissionDeniedError(RpcError):
    """PERMISSION_DENIED: the credential may not make this call. Never a decision."""


class ResourceExhaustedError(RpcError):
    """RESOURCE_EXHAUSTED: an evaluation limit was hit, or the server is at its cap."""


class DeadlineExceededError(RpcError):
    """DEADLINE_EXCEEDED: the call's deadline ran out. Not retried by the client."""


class UnavailableError(RpcError):
    """UNAVAILABLE: the server or its database stayed unreachable through every retry."""


_CLASSES: dict[grpc.StatusCode, type[RpcError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}
_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def error_for(
    code: grpc.StatusCode, message: str, violations: Iterable[FieldViolation] = ()
) -> RpcError:
    """The RpcError subclass instance for a status code."""
    return _CLASSES.get(code, RpcError)(code, message, violations)


def from_status_proto(status: status_pb2.Status) -> RpcError:
    """Convert a `google.rpc.Status` (for example a CheckBulk item's error)."""
    code = _BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    return error_for(code, status.message, _violations(status))


def from_call_error(
    code: grpc.StatusCode, details: str | None, trailers: Iterable[Any] | None
) -> RpcError:
    """Convert a failed call: its code, details and trailing metadata.

    The field violations come from the `grpc-status-details-bin` trailer (a serialized
    google.rpc.Status). A trailer that does not parse is ignored rather than hiding the
    status the server sent.
    """
    violations: tuple[FieldViolation, ...] = ()
    # Sync calls give a tuple of (key, value) pairs, aio calls a Metadata; both iterate
    # as pairs.
    for key, value in trailers or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                violations = _violations(status_pb2.Status.FromString(value))
            except Exception:  # a malformed detail must not mask the status itself
                violations = ()
    return error_for(code, details or "", violations)


def _violations(status: status_pb2.Status) -> tuple[FieldViolation, ...]:
    found: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend(
                FieldViolation(v.field, v.description) for v in bad_request.field_violations
            )
    return tuple(found)
