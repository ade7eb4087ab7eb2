"""Service accounts as stored: a tenant's non-human identities (docs/identity.md).

An account is a row, not authorization data: what it may do lives in relationships and
bindings naming `serviceaccount:<account_id>`, and its disablement in the subject status
(service/service_accounts.py writes both). `disabled_at` is kept here too, because the
key store reads it with each of the account's keys to refuse them. Not revisioned.

`ServiceAccounts` is the protocol; `MemoryServiceAccounts` is the implementation of
memory:// servers and tests, `store/postgres/service_accounts.py` the one on PostgreSQL
(migration 0008).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from authz_service.errors import AlreadyExists, NotFound, echo

__all__ = ["MemoryServiceAccounts", "ServiceAccountRecord", "ServiceAccounts", "account_not_found"]


@dataclass(frozen=True, slots=True)
class ServiceAccountRecord:
    tenant: str
    account_id: str
    description: str
    created_at: datetime
    disabled_at: datetime | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


def account_not_found(tenant: str, account_id: str) -> NotFound:
    return NotFound(
        f"service account `{echo(account_id)}` does not exist in tenant `{echo(tenant)}`"
    )


@runtime_checkable
class ServiceAccounts(Protocol):
    async def create(self, tenant: str, account_id: str, description: str) -> ServiceAccountRecord:
        """AlreadyExists if the id is taken in the tenant."""
        ...

    async def get(self, tenant: str, account_id: str) -> ServiceAccountRecord | None: ...

    async def page(self, tenant: str, after: str, limit: int) -> Sequence[ServiceAccountRecord]:
        """The tenant's accounts with ids after `after`, ordered by id."""
        ...

    async def set_disabled(
        self, tenant: str, account_id: str, disabled: bool
    ) -> ServiceAccountRecord:
        """Disable (keeping the first disable time) or enable; NotFound if absent."""
        ...

    async def delete(self, tenant: str, account_id: str) -> None:
        """NotFound if absent. (Offboarding a tenant removes all its accounts with the
        rest of its data, in the tenant registry's purge.)"""
        ...


class MemoryServiceAccounts:
    """Implements `ServiceAccounts` in a dict of frozen records."""

    def __init__(self) -> None:
        self._accounts: dict[tuple[str, str], ServiceAccountRecord] = {}

    async def create(self, tenant: str, account_id: str, description: str) -> ServiceAccountRecord:
        if (tenant, account_id) in self._accounts:
            raise AlreadyExists(
                f"service account `{echo(account_id)}` already exists in tenant `{echo(tenant)}`"
            )
        record = ServiceAccountRecord(tenant, account_id, description, datetime.now(UTC))
        self._accounts[(tenant, account_id)] = record
        return record

    async def get(self, tenant: str, account_id: str) -> ServiceAccountRecord | None:
        return self._accounts.get((tenant, account_id))

    async def page(self, tenant: str, after: str, limit: int) -> Sequence[ServiceAccountRecord]:
        found = sorted(
            (r for (t, a), r in self._accounts.items() if t == tenant and a > after),
            key=lambda r: r.account_id,
        )
        return found[:limit]

    async def set_disabled(
        self, tenant: str, account_id: str, disabled: bool
    ) -> ServiceAccountRecord:
        record = self._accounts.get((tenant, account_id))
        if record is None:
            raise account_not_found(tenant, account_id)
        if disabled:
            at = record.disabled_at or datetime.now(UTC)
            record = replace(record, disabled_at=at)
        else:
            record = replace(record, disabled_at=None)
        self._accounts[(tenant, account_id)] = record
        return record

    async def delete(self, tenant: str, account_id: str) -> None:
        if self._accounts.pop((tenant, account_id), None) is None:
            raise account_not_found(tenant, account_id)

    def purge(self, tenant: str) -> None:
        for key in [k for k in self._accounts if k[0] == tenant]:
            del self._accounts[key]

    def disabled_at(self, tenant: str, account_id: str) -> datetime | None:
        """For the memory key store: when the owner of a key was disabled."""
        record = self._accounts.get((tenant, account_id))
        return None if record is None else record.disabled_at
