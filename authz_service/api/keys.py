"""KeysService: API keys over the API (docs/auth.md "Managing keys").

Thin: validate and convert the request, call the key admin service, convert the answer.
Secrets appear only in CreateKey and RotateKey responses; digests never leave the store.
ListKeys pages by key id with a cursor bound to its call (docs/api.md "Cursors"); keys
are platform state, not revisioned, so pages are not pinned to a snapshot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from authz_service.api import convert
from authz_service.api.auth import current_key
from authz_service.api.calls import bind_deadline, call_info, unary_rpc
from authz_service.api.cursors import CursorScope
from authz_service.api.gen.authz.v1 import keys_pb2, keys_pb2_grpc
from authz_service.credentials import ApiKey, Scope, parse_scopes, validate_key_tenant
from authz_service.errors import InvalidArgument, echo
from authz_service.service import methods
from authz_service.service.keys import KeyAdmin
from authz_service.service.pages import page_limit

__all__ = ["KeysServicer", "key_expiry", "key_scopes", "key_to_proto"]

Ctx = grpc.aio.ServicerContext[Any, Any]
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)
_MAX_TIMESTAMP_S = 253_402_300_799  # 9999-12-31T23:59:59Z


def _time(value: datetime | None, msg: Any) -> None:
    if value is not None:
        msg.FromDatetime(value.astimezone(UTC))


def key_to_proto(key: ApiKey, now: datetime) -> keys_pb2.ApiKeyInfo:
    """`key` as the API shows it at `now`. `previous_secret_expire_time` is "unset if
    no previous secret works": left out once it is at or before `now` (an overlap that
    ended, or none), and for a key revoked, expired or of a disabled service account (no
    secret of it works), as authentication judges it (`ApiKey.refusal`)."""
    msg = keys_pb2.ApiKeyInfo(
        key_id=key.key_id,
        tenant=key.tenant,
        scopes=[s.value for s in Scope if s in key.scopes],
        description=key.name,
        service_account=key.service_account or "",
    )
    _time(key.created_at, msg.create_time)
    _time(key.expires_at, msg.expire_time)
    _time(key.revoked_at, msg.revoke_time)
    _time(key.last_used_at, msg.last_use_time)
    usable = not key.revoked and not key.expired(now) and key.owner_disabled_at is None
    if usable and key.previous_until is not None and key.previous_until > now:
        _time(key.previous_until, msg.previous_secret_expire_time)
    return msg


def _now() -> datetime:
    return datetime.now(UTC)


def key_scopes(values: Any) -> frozenset[Scope]:
    """The scopes of a key-creating request, each named once (as `parse_scopes` reads a
    name: `Check` is `check`; blank names are skipped): a repeat is a request not meant
    as sent."""
    seen: set[Scope] = set()
    for value in values:
        if not value.strip():
            continue
        (scope,) = parse_scopes([value])
        if scope in seen:
            raise InvalidArgument(
                f"scope `{echo(value)}` is listed twice", field="scopes", value=value
            )
        seen.add(scope)
    if not seen:
        raise InvalidArgument("a key needs at least one scope", field="scopes", value="")
    return frozenset(seen)


def _overlap(request: keys_pb2.RotateKeyRequest) -> timedelta:
    if not request.HasField("overlap"):
        return DEFAULT_OVERLAP
    return convert.duration(
        request.overlap, "overlap", timedelta(0), MAX_OVERLAP, "between 0 and 30 days"
    )


def key_expiry(request: Any) -> datetime | None:
    """The `expire_time` of a key-creating request (CreateKey, CreateServiceAccountKey)."""
    if not request.HasField("expire_time"):
        return None
    stamp: Timestamp = request.expire_time
    seconds, nanos = stamp.seconds, stamp.nanos
    # Checked before converting: a hostile Timestamp overflows datetime.
    if not (0 < seconds <= _MAX_TIMESTAMP_S and 0 <= nanos < 1_000_000_000):
        raise InvalidArgument(
            "`expire_time` must be a time between 1970 and 9999",
            field="expire_time",
            value=f"{seconds}s",
        )
    return stamp.ToDatetime(tzinfo=UTC)


class KeysServicer(keys_pb2_grpc.KeysServiceServicer):
    def __init__(self, admin: KeyAdmin, *, default_deadline_s: float) -> None:
        self._admin = admin
        self._deadline = default_deadline_s

    @unary_rpc
    async def CreateKey(
        self, request: keys_pb2.CreateKeyRequest, context: Ctx
    ) -> keys_pb2.CreateKeyResponse:
        tenant = validate_key_tenant(request.tenant)
        expires = key_expiry(request)
        key, secret = await self._admin.create(
            current_key(),
            call_info(context, self._deadline, reason=convert.reason(request.reason) or None),
            tenant=tenant,
            scopes=key_scopes(request.scopes),
            description=request.description,
            expires_at=expires,
        )
        return keys_pb2.CreateKeyResponse(key=key_to_proto(key, _now()), secret=secret)

    @unary_rpc
    async def ListKeys(
        self, request: keys_pb2.ListKeysRequest, context: Ctx
    ) -> keys_pb2.ListKeysResponse:
        bind_deadline(context, self._deadline)  # bounds its database reads
        if request.tenant:
            validate_key_tenant(request.tenant)
        limit = page_limit(request.limit)
        scope = CursorScope.of(methods.LIST_KEYS, request.tenant, request)
        after = scope.resume_after(request.cursor)
        # One more than the page, to know whether another page follows.
        found = list(await self._admin.page(request.tenant, after, limit + 1))
        now = _now()
        response = keys_pb2.ListKeysResponse(keys=[key_to_proto(k, now) for k in found[:limit]])
        if len(found) > limit:
            response.next_cursor.CopyFrom(scope.issue(0, found[limit - 1].key_id))
        return response

    @unary_rpc
    async def RevokeKey(
        self, request: keys_pb2.RevokeKeyRequest, context: Ctx
    ) -> keys_pb2.RevokeKeyResponse:
        key = await self._admin.revoke(
            call_info(context, self._deadline, reason=convert.reason(request.reason) or None),
            request.tenant,
            request.key_id,
        )
        return keys_pb2.RevokeKeyResponse(key=key_to_proto(key, _now()))

    @unary_rpc
    async def RotateKey(
        self, request: keys_pb2.RotateKeyRequest, context: Ctx
    ) -> keys_pb2.RotateKeyResponse:
        key, secret = await self._admin.rotate(
            current_key(),
            call_info(context, self._deadline, reason=convert.reason(request.reason) or None),
            request.tenant,
            request.key_id,
            _overlap(request),
        )
        return keys_pb2.RotateKeyResponse(key=key_to_proto(key, _now()), secret=secret)
