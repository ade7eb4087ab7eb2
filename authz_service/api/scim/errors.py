"""The service's errors as SCIM errors (RFC 7644 §3.12): status and scimType."""

from __future__ import annotations

from scim2_models import (
    ConflictException,
    ForbiddenException,
    InvalidValueException,
    NotFoundException,
    PayloadTooLargeException,
    PreconditionFailedException,
    SCIMException,
    UnauthorizedException,
    UniquenessException,
)

from authz_service.api.http_body import BodyRefused
from authz_service.errors import (
    AlreadyExists,
    AuthzError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from authz_service.store.scim import VersionConflict

__all__ = ["body_error", "scim_error"]


class _Unavailable(SCIMException):
    status = 503
    _default_detail = "the service is unavailable; retry later"


class _TooMany(SCIMException):
    """RESOURCE_EXHAUSTED's answer over HTTP: a caller held off after failed keys
    (docs/auth.md, "Failed attempts"), or a limit of calls in flight."""

    status = 429
    _default_detail = "too many requests; retry later"


class _SlowBody(SCIMException):
    status = 408
    _default_detail = "the request body did not arrive in time"


class _Internal(SCIMException):
    status = 500
    _default_detail = "the request could not be completed"


def scim_error(error: AuthzError) -> SCIMException:
    """The SCIM exception for `error`, its message as the detail. The `field` of an
    InvalidArgument is in the message, so the IdP's log names what was refused."""
    detail = str(error)
    field = getattr(error, "field", None)
    if field and f"`{field}`" not in detail and field not in detail:
        detail = f"{field}: {detail}"
    mapping: list[tuple[type[AuthzError], type[SCIMException]]] = [
        (VersionConflict, PreconditionFailedException),
        (NotFound, NotFoundException),
        (AlreadyExists, UniquenessException),
        (InvalidArgument, InvalidValueException),
        (Unauthenticated, UnauthorizedException),
        (PermissionDenied, ForbiddenException),
        (Unavailable, _Unavailable),
        # The server's deadline passed (a database too slow or unreachable): retry.
        (DeadlineExceeded, _Unavailable),
        (LimitExceeded, _TooMany),
        # What the service refuses in its current state: a suspended tenant's writes.
        (FailedPrecondition, ConflictException),
    ]
    for kind, scim in mapping:
        if isinstance(error, kind):
            return scim(detail=detail)
    return _Internal(detail=detail)


def body_error(error: BodyRefused) -> SCIMException:
    """A body refused while read (api/http_body.py): over the size limit, or too slow."""
    kind = PayloadTooLargeException if error.status == 413 else _SlowBody
    return kind(detail=error.message)
