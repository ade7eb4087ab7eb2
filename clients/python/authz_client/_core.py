"""What the async and the sync client share: settings, tokens, retry decisions, channel
options, and the conversions between helper arguments, requests and results.

The two clients differ only in how they wait (await vs block); everything that decides
what is sent and what is returned lives here, once.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

import grpc
from google.protobuf import struct_pb2

from authz_client import _results, text
from authz_client._stubs import core_pb2, permissions_pb2, relationships_pb2, schema_pb2
from authz_client.errors import error_for, from_call_error, from_status_proto
from authz_client.retry import Backoff, Deadline, is_retryable
from authz_client.types import (
    CheckItem,
    CheckResult,
    Consistency,
    Decision,
    ExcludedSubject,
    FoundResource,
    FoundSubject,
    PermissionResult,
    PermissionsResult,
    SchemaVersion,
    StoredRelationship,
)

__all__ = ["ClientCore"]

VERSION = "0.1.0"

Resource = str | core_pb2.ObjectReference
Subject = str | core_pb2.SubjectReference
RelationshipItem = str | core_pb2.Relationship | relationships_pb2.RelationshipUpdate
Operation = Literal["touch", "create", "delete"]
BulkItem = CheckItem | tuple[str, str, str]

_OPERATIONS: dict[str, relationships_pb2.RelationshipUpdate.Operation.ValueType] = {
    "touch": relationships_pb2.RelationshipUpdate.OPERATION_TOUCH,
    "create": relationships_pb2.RelationshipUpdate.OPERATION_CREATE,
    "delete": relationships_pb2.RelationshipUpdate.OPERATION_DELETE,
}

# gRPC's own reconnect backoff starts at 1 s and grows to 120 s; while it runs, calls fail
# at once without trying to connect, so the client's short retries would never reach a
# server that came back. Bring it into the client's backoff range instead. (Not
# grpc.min_reconnect_backoff_ms: gRPC also uses it as the connect timeout, 20 s by
# default, and a small value would cut off slow TLS handshakes.)
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.primary_user_agent", f"authz-client-python/{VERSION}"),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


PemSource = str | Path | bytes


def _pem(source: PemSource, name: str) -> bytes:
    """PEM bytes as given, or read from the file a str or Path names."""
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ValueError(f"{name}: cannot read `{source}`: {exc.strerror}") from None


def channel_security(
    tls: bool | grpc.ChannelCredentials,
    *,
    tls_ca: PemSource | None = None,
    tls_cert: PemSource | None = None,
    tls_key: PemSource | None = None,
    tls_server_name: str | None = None,
) -> tuple[grpc.ChannelCredentials | None, tuple[tuple[str, Any], ...]]:
    """Credentials (None for plaintext) and channel options of the TLS settings.

    Any of `tls_ca`, `tls_cert`/`tls_key` (mTLS) or `tls_server_name` turns TLS on;
    `tls_ca` replaces the system roots; `tls_server_name` is the name the server's
    certificate must carry when it differs from the host dialled (an IP, a tunnel).
    """
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key are given together (mTLS) or not at all")
    custom = any(v is not None for v in (tls_ca, tls_cert, tls_key, tls_server_name))
    if isinstance(tls, grpc.ChannelCredentials):
        if custom:
            raise ValueError("pass either tls=ChannelCredentials or the tls_* options")
        return tls, ()
    if not tls and not custom:
        return None, ()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_pem(tls_ca, "tls_ca") if tls_ca is not None else None,
        private_key=_pem(tls_key, "tls_key") if tls_key is not None else None,
        certificate_chain=_pem(tls_cert, "tls_cert") if tls_cert is not None else None,
    )
    options = (("grpc.ssl_target_name_override", tls_server_name),) if tls_server_name else ()
    return credentials, options


class ClientCore:
    """Settings and per-client state (the last write token of each tenant)."""

    def __init__(
        self,
        *,
        tenant: str | None,
        api_key: str | None,
        retries: int,
        backoff: tuple[float, float] | Backoff,
        timeout: float | None,
        rng: random.Random | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.default_tenant = tenant
        self.metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        self.retries = retries
        self.backoff = (
            backoff
            if isinstance(backoff, Backoff)
            else Backoff(initial=backoff[0], maximum=backoff[1])
        )
        self.timeout = timeout
        self._rng = rng or random.Random()
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()  # the sync client may be shared by threads

    # -- tenants and tokens -------------------------------------------------------------

    def tenant(self, tenant: str | None) -> str:
        chosen = tenant or self.default_tenant
        if not chosen:
            raise ValueError("no tenant: pass tenant=... to the call or to the client")
        return chosen

    def last_token(self, tenant: str) -> str | None:
        with self._lock:
            return self._tokens.get(tenant)

    def remember(self, tenant: str, token: str) -> None:
        # Tokens are opaque and cannot be compared: the write that completed last wins.
        if token:
            with self._lock:
                self._tokens[tenant] = token

    def consistency(self, tenant: str, given: Consistency | None) -> core_pb2.Consistency | None:
        """The caller's choice, else at_least_as_fresh of our last write in the tenant."""
        if given is not None:
            return given.to_proto()
        token = self.last_token(tenant)
        if token is None:
            return None
        return core_pb2.Consistency(at_least_as_fresh=core_pb2.ConsistencyToken(token=token))

    # -- retries --------------------------------------------------------------------------

    def deadline(self, timeout: float | Literal["default"] | None) -> Deadline:
        return Deadline.after(self.timeout if timeout == "default" else timeout)

    def retry_delay(
        self, error: grpc.RpcError, retry: int, *, idempotent: bool, deadline: Deadline
    ) -> float | None:
        """Seconds to wait before retry number `retry`, or None to give up."""
        if not is_retryable(_code(error), idempotent=idempotent):
            return None
        return self.resume_delay(retry, deadline)

    def resume_delay(self, retry: int, deadline: Deadline) -> float | None:
        """Seconds to wait before reopening a stream the server closed, or None."""
        if retry >= self.retries:
            return None
        delay = self.backoff.delay(retry, self._rng.random())
        return delay if deadline.allows_wait(delay) else None

    @staticmethod
    def ended(name: str) -> Exception:
        return error_for(
            grpc.StatusCode.UNAVAILABLE,
            f"the server kept closing the {name} stream; gave up after the retries",
        )

    @staticmethod
    def error(error: grpc.RpcError) -> Exception:
        """The typed exception for a failed call."""
        # Sync calls fail with an RpcError that is also a grpc.Call; aio calls with an
        # AioRpcError, which is not a Call but has the same accessors.
        if isinstance(error, grpc.Call | grpc.aio.AioRpcError):
            return from_call_error(error.code(), error.details(), error.trailing_metadata())
        return from_call_error(grpc.StatusCode.UNKNOWN, str(error), None)


def _code(error: grpc.RpcError) -> grpc.StatusCode | None:
    if isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        return error.code()
    return None


# -- requests ---------------------------------------------------------------------------


def obj(value: Resource) -> core_pb2.ObjectReference:
    return text.parse_object(value) if isinstance(value, str) else value


def subj(value: Subject) -> core_pb2.SubjectReference:
    return text.parse_subject(value) if isinstance(value, str) else value


def struct(context: dict[str, Any] | None) -> struct_pb2.Struct | None:
    return None if context is None else text.to_struct(context)


def bulk_items(items: Iterable[BulkItem]) -> list[permissions_pb2.CheckBulkRequestItem]:
    converted = []
    for item in items:
        check = item if isinstance(item, CheckItem) else CheckItem(*item)
        converted.append(
            permissions_pb2.CheckBulkRequestItem(
                resource=obj(check.resource),
                permission=check.permission,
                subject=subj(check.subject),
                context=struct(check.context),
            )
        )
    return converted


def updates(
    items: Iterable[RelationshipItem], operation: Operation
) -> list[relationships_pb2.RelationshipUpdate]:
    op = _OPERATIONS[operation]
    converted = []
    for item in items:
        if isinstance(item, relationships_pb2.RelationshipUpdate):
            converted.append(item)
            continue
        relationship = text.parse_relationship(item) if isinstance(item, str) else item
        converted.append(
            relationships_pb2.RelationshipUpdate(operation=op, relationship=relationship)
        )
    return converted


def idempotency_key(given: str | None) -> str:
    # One key per logical write, reused by every retry of it: that is what makes the
    # retry safe (the server returns the first attempt's token instead of writing again).
    return given or uuid.uuid4().hex


# -- results ----------------------------------------------------------------------------


def check_result(response: permissions_pb2.CheckResponse) -> CheckResult:
    return CheckResult(
        decision=Decision.from_proto(response.decision),
        missing_context=tuple(response.missing_context),
        decision_id=response.decision_id,
        token=response.checked_at.token,
        explanation=(
            _results.explanation(response.explanation) if response.HasField("explanation") else None
        ),
        subject=text.format_subject(response.subject) if response.HasField("subject") else "",
        actor=text.format_subject(response.actor) if response.HasField("actor") else "",
        reason=response.reason,
        agents=tuple(text.format_subject(agent) for agent in response.agents),
    )


def bulk_results(response: permissions_pb2.CheckBulkResponse) -> list[CheckResult]:
    token = response.checked_at.token
    results = []
    for item in response.items:
        if item.WhichOneof("outcome") == "result":
            results.append(
                CheckResult(
                    decision=Decision.from_proto(item.result.decision),
                    missing_context=tuple(item.result.missing_context),
                    decision_id=item.result.decision_id,
                    token=token,
                    explanation=(
                        _results.explanation(item.result.explanation)
                        if item.result.HasField("explanation")
                        else None
                    ),
                )
            )
        else:
            # An item without a result is never allowed, whatever else it carries.
            results.append(
                CheckResult(Decision.UNSPECIFIED, (), "", token, from_status_proto(item.error))
            )
    return results


def permissions_result(response: permissions_pb2.ListPermissionsResponse) -> PermissionsResult:
    return PermissionsResult(
        permissions=tuple(
            PermissionResult(
                p.permission, Decision.from_proto(p.decision), tuple(p.missing_context)
            )
            for p in response.permissions
        ),
        decision_id=response.decision_id,
        token=response.checked_at.token,
    )


def found_resource(response: permissions_pb2.LookupResourcesResponse) -> FoundResource:
    return FoundResource(
        resource_id=response.resource_id,
        decision=Decision.from_proto(response.decision),
        missing_context=tuple(response.missing_context),
        token=response.looked_up_at.token,
    )


def found_subject(response: permissions_pb2.LookupSubjectsResponse) -> FoundSubject:
    return FoundSubject(
        subject_id=response.subject_id,
        decision=Decision.from_proto(response.decision),
        missing_context=tuple(response.missing_context),
        excluded_subject_ids=tuple(response.excluded_subject_ids),
        token=response.looked_up_at.token,
        excluded_subjects=tuple(
            ExcludedSubject(e.subject_id, Decision.from_proto(e.decision), tuple(e.missing_context))
            for e in response.excluded_subjects
        ),
    )


def stored_relationship(
    response: relationships_pb2.ReadRelationshipsResponse,
) -> StoredRelationship:
    return StoredRelationship(
        text=text.format_relationship(response.relationship),
        relationship=response.relationship,
        token=response.read_at.token,
    )


def schema_version(response: schema_pb2.ReadSchemaResponse) -> SchemaVersion:
    return SchemaVersion(
        schema=response.schema,
        schema_version=response.schema_version,
        create_time=(
            response.create_time.ToDatetime(tzinfo=UTC)
            if response.HasField("create_time")
            else None
        ),
        current=response.current,
    )


def has_cursor(request: Any) -> bool:
    """Whether a stream request can continue after a position (it has a `cursor` field)."""
    return "cursor" in request.DESCRIPTOR.fields_by_name


def resume(request: Any, cursor: core_pb2.Cursor, limit: int, yielded: int) -> bool:
    """Point a stream request after `cursor`, with what is left of its original `limit`.

    False when nothing is left to read (the limit was reached before the stream ended).
    A cursor pins the first page's revision, so a resumed stream reads the same snapshot.
    """
    if limit and yielded >= limit:
        return False
    if yielded:
        request.cursor.CopyFrom(cursor)
        if limit:
            request.limit = limit - yielded
    return True


# -- bulk checks ------------------------------------------------------------------------

# The server's default per-call item limit (AUTHZ_MAX_BATCH); larger batches are split.
MAX_BATCH = 1000


def batches(
    items: list[permissions_pb2.CheckBulkRequestItem], size: int
) -> list[list[permissions_pb2.CheckBulkRequestItem]]:
    """`items` in consecutive slices of at most `size`; an empty batch stays one call,
    so that it is the server that answers it (with no results)."""
    if size < 1:
        raise ValueError("max_batch must be >= 1")
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def with_items(
    template: permissions_pb2.CheckBulkRequest, items: list[permissions_pb2.CheckBulkRequestItem]
) -> permissions_pb2.CheckBulkRequest:
    """A copy of `template` with `items`: each slice is its own request message."""
    request = permissions_pb2.CheckBulkRequest()
    request.CopyFrom(template)
    request.items.extend(items)
    return request


def snapshot(token: str) -> core_pb2.Consistency:
    """What every slice after the first is decided at: the first slice's revision, so a
    split batch answers at one revision like a single call."""
    return core_pb2.Consistency(at_exact_snapshot=core_pb2.ConsistencyToken(token=token))
