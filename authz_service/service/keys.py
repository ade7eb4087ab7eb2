"""Key management over the API (KeysService): create, list, revoke, rotate (docs/auth.md).

Who may manage which key is settled before this runs for the request's tenant (the auth
interceptor's tenant binding); here a key is only found in the tenant the request names,
so a tenant admin cannot reach another tenant's key even by id, and a key never gets a
scope its creator lacks. Every change is an admin record in the decision log, in the
key's tenant stream (`_platform` for platform keys), with the full method name as action.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from authz_service.credentials import (
    ALL_TENANTS,
    ApiKey,
    Scope,
    new_key,
    new_secret,
    token,
    validate_key_tenant,
)
from authz_service.errors import AuthzError, NotFound, PermissionDenied, Unavailable, echo
from authz_service.service import methods
from authz_service.service.audit import AuditTrail, CallInfo, log_failure
from authz_service.store.protocol import KeyStore
from authz_service.store.registry import TenantRegistry, require_active

__all__ = ["PLATFORM_STREAM", "KeyAdmin"]

PLATFORM_STREAM = "_platform"  # the log stream of platform-wide admin records


class KeyAdmin:
    def __init__(
        self,
        keys: KeyStore,
        audit: AuditTrail,
        *,
        on_changed: Callable[[str], None] = lambda _key_id: None,
        tenants: TenantRegistry | None = None,
    ) -> None:
        """`tenants`, when given, refuses new keys of a tenant that is not active."""
        self._keys = keys
        self._audit = audit
        self._tenants = tenants
        self._on_changed = on_changed  # drops the key from this replica's key caches

    def key_changed(self, key_id: str) -> None:
        """Forget a key in this replica's key caches (its owner changed)."""
        self._on_changed(key_id)

    async def create(
        self,
        caller: ApiKey | None,
        call: CallInfo,
        *,
        tenant: str,
        scopes: Iterable[Scope],
        description: str,
        expires_at: datetime | None,
        service_account: str | None = None,
    ) -> tuple[ApiKey, str]:
        """The new key as stored and its full key string (the only time it exists);
        `service_account` names the account of `tenant` that owns it, if any."""
        started = time.perf_counter()
        wanted = frozenset(scopes)
        _may_grant(caller, wanted)
        record, secret = new_key(
            tenant=tenant,
            scopes=wanted,
            name=description,
            expires_at=expires_at,
            field="description",
        )
        if self._tenants is not None and tenant != ALL_TENANTS:
            await require_active(self._tenants, tenant)
        stored = await self._keys.create(replace(record, service_account=service_account))
        self._on_changed(stored.key_id)
        try:
            await self._record(stored, call, methods.CREATE_KEY, started)
        except AuthzError as exc:
            await self._keys.revoke(stored.key_id)  # an unlogged key must not stay usable
            raise Unavailable(
                f"key not created: the decision log could not record it ({log_failure(exc)})"
            ) from exc
        return stored, secret

    async def page(self, tenant: str, after: str, limit: int) -> Sequence[ApiKey]:
        """Keys of `tenant` (every key when empty) after the id `after`."""
        return await self._keys.page(tenant or None, after, limit)

    async def revoke(self, call: CallInfo, tenant: str, key_id: str) -> ApiKey:
        started = time.perf_counter()
        await self._find(tenant, key_id)
        key = await self._keys.revoke(key_id)
        self._on_changed(key_id)
        try:
            await self._record(key, call, methods.REVOKE_KEY, started)
        except AuthzError as exc:
            # The revocation stands: refusing it because of the log would be worse.
            raise Unavailable(
                f"key `{key_id}` is revoked, but the decision log could not record it "
                f"({log_failure(exc)})"
            ) from exc
        return key

    async def rotate(
        self, caller: ApiKey | None, call: CallInfo, tenant: str, key_id: str, overlap: timedelta
    ) -> tuple[ApiKey, str]:
        """The rotated key and its new full key string. The caller is handed a working
        key: it must hold every scope of it, as for a key it creates."""
        started = time.perf_counter()
        _may_grant(caller, (await self._find(tenant, key_id)).scopes)
        if self._tenants is not None and tenant != ALL_TENANTS:
            await require_active(self._tenants, tenant)  # a new secret is a new credential
        secret, digest = new_secret()
        key = await self._keys.rotate(key_id, digest, overlap)
        self._on_changed(key_id)
        try:
            await self._record(
                key, call, methods.ROTATE_KEY, started, overlap_s=overlap.total_seconds()
            )
        except AuthzError as exc:
            until = key.previous_until.isoformat() if key.previous_until else "now"
            raise Unavailable(
                f"key `{key_id}` was rotated but the decision log could not record it, so its "
                f"new secret is not returned; the previous one works until {until}: rotate "
                f"again ({log_failure(exc)})"
            ) from exc
        return key, token(key.key_id, secret)

    async def _find(self, tenant: str, key_id: str) -> ApiKey:
        validate_key_tenant(tenant)
        key = await self._keys.get(key_id)
        # Another tenant's key is "not found": its existence is not the caller's business.
        if key is None or key.tenant != tenant:
            shown = "platform keys" if tenant == ALL_TENANTS else f"tenant `{echo(tenant)}`"
            raise NotFound(f"api key `{echo(key_id)}` does not exist in {shown}")
        return key

    async def _record(
        self, key: ApiKey, call: CallInfo, action: str, started: float, **extra: object
    ) -> None:
        details: dict[str, object] = {
            "key_tenant": key.tenant,
            "scopes": sorted(s.value for s in key.scopes),
            "description": key.name,
            "expire_time": key.expires_at.isoformat() if key.expires_at else None,
            **({"service_account": key.service_account} if key.service_account else {}),
            **extra,
        }
        await self._audit.admin(
            PLATFORM_STREAM if key.platform else key.tenant,
            call,
            action=action,
            resource=f"api_key:{key.key_id}",
            subject=f"api_key:{key.key_id}",
            revision=0,
            schema_version="",
            details=details,
            started=started,
        )


def _may_grant(caller: ApiKey | None, scopes: frozenset[Scope]) -> None:
    """PermissionDenied unless `caller` (None: authentication is off) holds `scopes`: a
    key never gets, from a call, a scope the calling key lacks."""
    if caller is not None and not scopes <= caller.scopes:
        extra = ",".join(sorted(s.value for s in scopes - caller.scopes))
        raise PermissionDenied(
            f"api key `{caller.key_id}` cannot grant scopes it does not hold: {extra}"
        )
