"""API keys in process memory: the `KeyStore` of MemoryStore (tests, memory:// servers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from authz_service.credentials import ApiKey
from authz_service.errors import AlreadyExists, FailedPrecondition, NotFound, echo

__all__ = ["MemoryKeyStore"]


class MemoryKeyStore:
    """Implements `authz_service.store.protocol.KeyStore` in a dict. Records are frozen
    dataclasses, so handing them out shares nothing mutable."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        # When a key's service account was disabled (tenant, account id -> time or None),
        # read with every key as PostgreSQL's store reads it; set by MemoryStore.
        self.owner_disabled_at: Callable[[str, str], datetime | None] = lambda _t, _a: None

    def _out(self, key: ApiKey) -> ApiKey:
        if key.service_account is None:
            return key
        at = self.owner_disabled_at(key.tenant, key.service_account)
        return replace(key, owner_disabled_at=at)

    async def create(self, key: ApiKey) -> ApiKey:
        if key.key_id in self._keys:
            raise AlreadyExists(f"api key `{echo(key.key_id)}` already exists")
        self._keys[key.key_id] = key
        return self._out(key)

    async def get(self, key_id: str) -> ApiKey | None:
        key = self._keys.get(key_id)
        return None if key is None else self._out(key)

    async def list(self, tenant: str | None = None) -> Sequence[ApiKey]:
        found = [k for k in self._keys.values() if tenant is None or k.tenant == tenant]
        return [self._out(k) for k in sorted(found, key=lambda k: (k.created_at, k.key_id))]

    async def revoke(self, key_id: str) -> ApiKey:
        key = self._keys.get(key_id)
        if key is None:
            raise NotFound(f"api key `{echo(key_id)}` does not exist")
        key = self._keys[key_id] = key.revoke(datetime.now(UTC))
        return self._out(key)

    async def page(self, tenant: str | None, after: str, limit: int) -> Sequence[ApiKey]:
        found = sorted(
            (k for k in self._keys.values() if tenant is None or k.tenant == tenant),
            key=lambda k: k.key_id,
        )
        return [self._out(k) for k in found if k.key_id > after][:limit]

    async def rotate(self, key_id: str, secret_hash: bytes, overlap: timedelta) -> ApiKey:
        key = self._keys.get(key_id)
        if key is None:
            raise NotFound(f"api key `{echo(key_id)}` does not exist")
        now = datetime.now(UTC)
        if key.revoked or key.expired(now):
            state = "revoked" if key.revoked else "expired"
            raise FailedPrecondition(f"api key `{echo(key_id)}` is {state}: it cannot be rotated")
        key = self._keys[key_id] = replace(
            key,
            secret_hash=secret_hash,
            previous_hash=key.secret_hash,
            previous_until=now + overlap,
        )
        return self._out(key)

    async def touch(self, used: Mapping[str, datetime]) -> None:
        for key_id, at in used.items():
            key = self._keys.get(key_id)
            if key is not None and (key.last_used_at is None or key.last_used_at < at):
                self._keys[key_id] = replace(key, last_used_at=at)
