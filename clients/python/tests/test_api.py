"""The public API is what __all__ says; changing it is a decision, not an accident."""

import authz_client


def test_public_names() -> None:
    assert authz_client.__all__ == [
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
    for name in authz_client.__all__:
        assert hasattr(authz_client, name), name
