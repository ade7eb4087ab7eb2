"""The one exception tree of the service.

Every error the service raises on purpose derives from `AuthzError`. The API layer
translates each class to one gRPC status code in a single module
(`authz_service.api.status`); nothing else maps errors.

    AuthzError
    ├── InvalidArgument          bad input; names the field and the value
    │   ├── SchemaError          schema text that does not compile; carries line:column
    │   └── CaveatError          a caveat expression or context that does not type/evaluate
    ├── NotFound                 a named thing (definition, role, key, decision) does not exist
    ├── AlreadyExists            create of something that exists
    ├── FailedPrecondition       request valid but state forbids it (stale token, orphaning
    │                            schema change, precondition on a write)
    ├── LimitExceeded            depth, fan-out or batch limit hit while evaluating
    ├── DeadlineExceeded         the caller's deadline ran out during evaluation
    ├── Unavailable              a dependency (database, log sink) is unreachable
    ├── Unauthenticated          no or bad credentials
    └── PermissionDenied         credentials do not allow this call

Messages are short, lowercase, and put user input in backticks, shown through `echo` so
that a hostile 10,000-character value costs at most ECHO_CHARS characters of the message.
They never contain SQL or stack details: those go to the server log.
"""

from __future__ import annotations

__all__ = [
    "ECHO_CHARS",
    "PATH_CHARS",
    "AlreadyExists",
    "AuthzError",
    "CaveatError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "LimitExceeded",
    "NotFound",
    "PermissionDenied",
    "PreconditionUnmet",
    "SchemaError",
    "Unauthenticated",
    "Unavailable",
    "echo",
]

ECHO_CHARS = 64
PATH_CHARS = 4096  # PATH_MAX on Linux
"""How much of a caller's value an error message quotes."""


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """`value` as text for an error message: whole when short, else its first `limit`
    (ECHO_CHARS) characters and its size, e.g. `xxxx…(10001 bytes)`. A local command
    naming a file path the user typed gives PATH_CHARS: a path cut short names nothing.

    Every message that quotes caller input goes through here, so the status trailer stays
    small: an echoed 20 KB id would make a default gRPC client report RESOURCE_EXHAUSTED
    ("retry with backoff") instead of the INVALID_ARGUMENT it is.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text.translate(_ESCAPED)
    size = len(text.encode("utf-8", "surrogatepass"))
    return f"{text[:limit].translate(_ESCAPED)}…({size} bytes)"


# C0 controls and DEL, shown as escapes: a caller's NUL, newline or terminal escape
# sequence must not reach a log line or a terminal as is.
_ESCAPED = {
    c: {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(chr(c), f"\\x{c:02x}")
    for c in (*range(0x20), 0x7F)
}


class AuthzError(Exception):
    """Root of every deliberate error. `message` is safe to show to callers."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(AuthzError):
    """Input that can never succeed. `field` names the offending request field.

    `unquoted`, for a message that quotes values of the request context, is the same
    message without them (None: not known). The decision log keeps it instead where it
    redacts that context; the caller still gets `message`.
    """

    def __init__(
        self, message: str, *, field: str = "", value: object = None, unquoted: str | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.unquoted = unquoted


class SchemaError(InvalidArgument):
    """Schema text that does not parse or type-check, located at `line`:`column` (1-based)."""

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        location = f"{line}:{column}: " if line else ""
        super().__init__(f"{location}{message}", field="schema")
        self.line = line
        self.column = column
        self.detail = message


class CaveatError(InvalidArgument):
    """A caveat expression that does not compile, or context that does not fit it."""


class NotFound(AuthzError):
    pass


class AlreadyExists(AuthzError):
    pass


class FailedPrecondition(AuthzError):
    """Valid input the current state refuses. `field`, when set, names the request field
    whose condition failed (`preconditions[2]`, `idempotency_key`)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class PreconditionUnmet(FailedPrecondition):
    """A write's own precondition (`preconditions[i]`) did not hold. Kept apart from the
    other refusals of a write (a suspended tenant's, say), which are not a lost race."""


class LimitExceeded(AuthzError):
    pass


class DeadlineExceeded(AuthzError):
    pass


class Unavailable(AuthzError):
    pass


class Unauthenticated(AuthzError):
    pass


class PermissionDenied(AuthzError):
    pass
