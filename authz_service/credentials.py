"""API keys: the credentials callers present, their scopes and the tenant they are bound to.

A key is one string, `azk_<key id>_<secret>`, shown once when it is created. The key id
names the stored record (it is not secret and appears in decision-log records); the
secret is 256 random bits of which only a SHA-256 digest is kept. See docs/auth.md.

This module is domain code: no grpc, no database. The API layer checks presented keys
with `verify`; stores persist `ApiKey` records as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from authz_service.errors import InvalidArgument, echo

__all__ = [
    "ALL_TENANTS",
    "KEY_PREFIX",
    "ApiKey",
    "Scope",
    "hash_secret",
    "new_key",
    "new_secret",
    "parse_scopes",
    "split_token",
    "token",
    "validate_key_tenant",
]

KEY_PREFIX = "azk"
ALL_TENANTS = "*"
"""The tenant of a platform operator's key: valid for every tenant."""

_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: ids are read aloud
_ID_LENGTH = 12  # 60 bits: collisions are refused by the store, never silently merged
_SECRET_BYTES = 32
_MAX_NAME = 200
_ID_RE = re.compile(rf"[{_ID_ALPHABET}]{{{_ID_LENGTH}}}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_\-]{43,128}")  # urlsafe base64 of 32+ bytes
# The same rule the API applies to request tenants (api/convert.py); kept here too so
# that the domain refuses a key no request could ever match.
_TENANT_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_\-]{0,63}")


class Scope(StrEnum):
    """What a key may do; the method -> scope table is in `authz_service.api.auth`."""

    CHECK = "check"  # decisions: Check, CheckBulk, ListPermissions, lookups, Explain
    WRITE = "write"  # tenant data: relationships, roles, bindings, subject lifecycle
    ADMIN = "admin"  # the shared schema and API keys
    AUDIT = "audit"  # the decision log: query, verify, explain past decisions
    SCIM = "scim"  # SCIM provisioning over HTTP (docs/identity.md); no gRPC method


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One stored key. `secret_hash` is SHA-256 of the secret; the secret is never kept."""

    key_id: str
    tenant: str  # a tenant id, or ALL_TENANTS for platform operators
    scopes: frozenset[Scope]
    secret_hash: bytes
    created_at: datetime
    name: str = ""
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    # The secret a rotation replaced, and until when it still works (the overlap).
    previous_hash: bytes | None = None
    previous_until: datetime | None = None
    last_used_at: datetime | None = None
    # The service account that owns the key, in `tenant` (docs/identity.md), and when that
    # account was disabled, as the store reads it with the key: refused while disabled.
    service_account: str | None = None
    owner_disabled_at: datetime | None = None

    @property
    def platform(self) -> bool:
        return self.tenant == ALL_TENANTS

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows_tenant(self, tenant: str) -> bool:
        return self.platform or self.tenant == tenant

    def matches(self, secret: str) -> bool:
        """True if `secret` is this key's current secret or the one its last rotation
        replaced (still subject to `refusal`); constant time in the digest compares."""
        return self.matches_digest(hash_secret(secret))

    def matches_digest(self, digest: bytes) -> bool:
        """`matches` of the secret whose `hash_secret` is `digest` (a call hashes its
        secret once and compares the digest as often as it needs)."""
        current = hmac.compare_digest(digest, self.secret_hash)
        previous = hmac.compare_digest(digest, self.previous_hash or b"")
        return current or previous

    def refusal(self, digest: bytes, now: datetime) -> str | None:
        """Why this key, matched by the secret whose `hash_secret` is `digest`, may not
        be used at `now`; None if it may."""
        if self.revoked:
            return f"api key `{self.key_id}` is revoked"
        if self.expired(now):
            return f"api key `{self.key_id}` expired"
        if self.owner_disabled_at is not None:
            return (
                f"api key `{self.key_id}` belongs to service account "
                f"`{self.service_account}`, which is disabled"
            )
        current = hmac.compare_digest(digest, self.secret_hash)
        if not current and (self.previous_until is None or self.previous_until <= now):
            return f"api key `{self.key_id}` was rotated: its previous secret no longer works"
        return None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def revoke(self, at: datetime) -> ApiKey:
        """This key revoked at `at`; a key already revoked keeps its first revocation time."""
        return self if self.revoked_at is not None else replace(self, revoked_at=at)


def hash_secret(secret: str) -> bytes:
    """SHA-256 of the secret.

    A plain fast hash is right here, unlike for passwords: the secret is 256 bits from
    `secrets`, so there is nothing to guess from a leaked digest, and a slow KDF
    (bcrypt, scrypt) would put tens of milliseconds of CPU on every uncached call.
    """
    return hashlib.sha256(secret.encode("ascii")).digest()


def split_token(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed `azk_<id>_<secret>`, else None.

    The secret may itself contain `_` (urlsafe base64), so only the first two separators
    count; the id never contains one.
    """
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    _, key_id, secret = parts
    if not _ID_RE.fullmatch(key_id) or not _SECRET_RE.fullmatch(secret):
        return None
    return key_id, secret


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from `check,write` (or an iterable of names); at least one, all known."""
    names = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    found: set[Scope] = set()
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        try:
            found.add(Scope(name))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise InvalidArgument(
                f"scope `{echo(raw.strip())}` is not one of {known}", field="scopes", value=raw
            ) from None
    if not found:
        raise InvalidArgument("a key needs at least one scope", field="scopes", value="")
    return frozenset(found)


def validate_key_tenant(tenant: str) -> str:
    if tenant != ALL_TENANTS and not _TENANT_RE.fullmatch(tenant):
        shown = tenant or "(empty)"
        raise InvalidArgument(
            f"tenant `{echo(shown)}` must be `*` or 1-64 characters of letters, digits, `_` "
            "and `-`, beginning with a letter or digit",
            field="tenant",
            value=tenant,
        )
    return tenant


def new_key(
    *,
    tenant: str,
    scopes: Iterable[Scope],
    name: str = "",
    now: datetime | None = None,
    expires_at: datetime | None = None,
    field: str = "name",
) -> tuple[ApiKey, str]:
    """A fresh key record and the full key string (the only time the secret exists)."""
    scope_set = parse_scopes(s.value for s in scopes)
    if len(name) > _MAX_NAME or not name.isprintable():
        raise InvalidArgument(
            f"key {field} must be at most {_MAX_NAME} printable characters",
            field=field,
            value=name,
        )
    created = now or datetime.now(UTC)
    if expires_at is not None and expires_at <= created:
        raise InvalidArgument(
            "`expire_time` must be in the future", field="expire_time", value=str(expires_at)
        )
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
    secret, digest = new_secret()
    record = ApiKey(
        key_id=key_id,
        tenant=validate_key_tenant(tenant),
        scopes=scope_set,
        secret_hash=digest,
        created_at=created,
        name=name,
        expires_at=expires_at,
    )
    return record, token(key_id, secret)


def new_secret() -> tuple[str, bytes]:
    """A fresh secret and its digest."""
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return secret, hash_secret(secret)


def token(key_id: str, secret: str) -> str:
    """The full key string callers present."""
    return f"{KEY_PREFIX}_{key_id}_{secret}"
