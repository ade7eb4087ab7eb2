"""API keys in process memory: the `KeyStore` of MemoryStore (tests, memory:// servers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

    async def create(self, key: ApiKey) -> ApiKey:
        if key.key_id in self._keys:
            raise AlreadyExists(f"api key `{echo(key.key_id)}` already exists")
        self._keys[key.key_id] = key
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def list(self, tenant: str | None = None) -> Sequence[ApiKey]:
        found = [k for k in self._keys.values() if tenant is None or k.tenant == tenant]
        return sorted(found, key=lambda k: (k.created_at, k.key_id))

    async def revoke(self, key_id: str) -> ApiKey:
        key = self._keys.get(key_id)
        if key is None:
            raise NotFound(f"api key `{echo(key_id)}` does not exist")
        key = self._keys[key_id] = key.revoke(datetime.now(UTC))
        return key

    async def page(self, tenant: str | None, after: str, limit: int) -> Sequence[ApiKey]:
        found = sorted(
            (k for k in self._keys.values() if tenant is None or k.tenant == tenant),
            key=lambda k: k.key_id,
        )
        return [k for k in found if k.key_id > after][:limit]

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
        return key

    async def touch(self, used: Mapping[str, datetime]) -> None:
        for key_id, at in used.items():
            key = self._keys.get(key_id)
            if key is not None and (key.last_used_at is None or key.last_used_at < at):
                self._keys[key_id] = replace(key, last_used_at=at)
