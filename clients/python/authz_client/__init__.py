"""Python client of the authorization decision service.

    from authz_client import AsyncAuthzClient

    async with AsyncAuthzClient("127.0.0.1:50051", tenant="acme") as client:
        result = await client.check("document:readme", "view", "user:alice")
        if result.allowed: ...

`AuthzClient` is the blocking twin with the same methods. Every error is an
`AuthzClientError`; see `authz_client.errors` for the tree.
"""

from authz_client._core import VERSION as __version__
from authz_client.aio import AsyncAuthzClient
from authz_client.errors import (
    AlreadyExistsError,
    AuthzClientError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RpcError,
    TextFormError,
    UnauthenticatedError,
    UnavailableError,
)
from authz_client.retry import Backoff
from authz_client.sync import AuthzClient
from authz_client.text import format_relationship, parse_relationship
from authz_client.types import (
    CheckItem,
    CheckResult,
    Consistency,
    Decision,
    DeleteResult,
    ExcludedSubject,
    FoundResource,
    FoundSubject,
    PermissionResult,
    PermissionsResult,
    RelationshipFilter,
    SchemaVersion,
    SchemaWriteResult,
    StoredRelationship,
    WriteResult,
)

__all__ = [
    "AlreadyExistsError",
    "AsyncAuthzClient",
    "AuthzClient",
    "AuthzClientError",
    "Backoff",
    "CheckItem",
    "CheckResult",
    "Consistency",
    "DeadlineExceededError",
    "Decision",
    "DeleteResult",
    "ExcludedSubject",
    "FailedPreconditionError",
    "FieldViolation",
    "FoundResource",
    "FoundSubject",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "PermissionResult",
    "PermissionsResult",
    "RelationshipFilter",
    "ResourceExhaustedError",
    "RpcError",
    "SchemaVersion",
    "SchemaWriteResult",
    "StoredRelationship",
    "TextFormError",
    "UnauthenticatedError",
    "UnavailableError",
    "WriteResult",
    "__version__",
    "format_relationship",
    "parse_relationship",
]
