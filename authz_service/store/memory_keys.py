"""API keys in process memory: the `KeyStore` of MemoryStore (tests, memory:// servers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from authz_service.credentials import ApiKey
from authz_service.errors import AlreadyExists, NotFound, echo

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
