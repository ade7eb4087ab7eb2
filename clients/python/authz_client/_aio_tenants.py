"""AsyncAuthzClient's methods for tenants, API keys and service accounts (TenantService,
KeysService, ServiceAccountsService).

`_sync_tenants.py` is the blocking twin, line for line; tests/test_coverage.py checks that
the two clients have the same methods and signatures.
"""

# ruff: noqa: ASYNC109 -- `timeout` is the gRPC deadline (see _aio_base.py)

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from authz_client import _ops_accounts, _ops_admin
from authz_client._aio_base import AsyncBase, Timeout
from authz_client.types import WriteResult
from authz_client.types_accounts import (
    ServiceAccount,
    ServiceAccountChange,
    ServiceAccountDeletion,
    ServiceAccountReport,
)
from authz_client.types_admin import (
    ApiKey,
    NewKey,
    Page,
    Tenant,
    TenantDeletion,
    TenantExport,
)

__all__ = ["AsyncTenants"]


class AsyncTenants(AsyncBase):
    # -- tenants (TenantService) ----------------------------------------------------------

    async def create_tenant(
        self, name: str, *, reason: str = "", timeout: Timeout = "default"
    ) -> Tenant:
        """Register tenant `name` (data calls to an unknown tenant are NOT_FOUND)."""
        return await self._run(_ops_admin.create_tenant(name, reason), timeout)

    async def get_tenant(self, name: str | None = None, *, timeout: Timeout = "default") -> Tenant:
        """The tenant `name` (default: the client's tenant), with its newest token."""
        return await self._run(_ops_admin.get_tenant(self._core.tenant(name)), timeout)

    async def list_tenants(
        self, *, limit: int = 0, cursor: str = "", timeout: Timeout = "default"
    ) -> Page[Tenant]:
        """One page of tenants; pass the page's `next_cursor` as `cursor` for the next."""
        return await self._run(_ops_admin.list_tenants(limit, cursor), timeout)

    async def suspend_tenant(
        self, name: str | None = None, *, reason: str = "", timeout: Timeout = "default"
    ) -> WriteResult:
        """Suspend a tenant: its checks are DENIED (reason `tenant_suspended`)."""
        return await self._run(_ops_admin.suspend_tenant(self._core.tenant(name), reason), timeout)

    async def reactivate_tenant(
        self, name: str | None = None, *, reason: str = "", timeout: Timeout = "default"
    ) -> WriteResult:
        return await self._run(
            _ops_admin.reactivate_tenant(self._core.tenant(name), reason), timeout
        )

    async def export_tenant(
        self, name: str | None = None, *, timeout: Timeout = "default"
    ) -> TenantExport:
        """The whole export of a suspended tenant, its SHA-256 checked by the client."""
        return await self._collect(_ops_admin.export_tenant(self._core.tenant(name)), timeout)

    async def delete_tenant(
        self,
        name: str,
        *,
        reason: str = "",
        expected_export_sha256: str = "",
        timeout: Timeout = "default",
    ) -> TenantDeletion:
        """Delete tenant `name` (always named explicitly) and return its export; with
        `expected_export_sha256` (from `export_tenant`), only if the export still has it."""
        op = _ops_admin.delete_tenant(name, reason, expected_export_sha256)
        return await self._run(op, timeout)

    # -- API keys (KeysService) -----------------------------------------------------------

    async def create_key(
        self,
        *,
        scopes: Iterable[str],
        description: str = "",
        expire_time: datetime | None = None,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> NewKey:
        """A new key bound to `tenant` (`*`: a platform key); its secret is shown once."""
        op = _ops_admin.create_key(
            self._core.tenant(tenant), scopes, description, expire_time, reason
        )
        return await self._run(op, timeout)

    async def list_keys(
        self,
        *,
        tenant: str | None = None,
        limit: int = 0,
        cursor: str = "",
        timeout: Timeout = "default",
    ) -> Page[ApiKey]:
        """Keys of `tenant` (default: the client's; none at all: every key)."""
        chosen = tenant if tenant is not None else self._core.default_tenant or ""
        return await self._run(_ops_admin.list_keys(chosen, limit, cursor), timeout)

    async def revoke_key(
        self,
        key_id: str,
        *,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> ApiKey:
        return await self._run(
            _ops_admin.revoke_key(self._core.tenant(tenant), key_id, reason), timeout
        )

    async def rotate_key(
        self,
        key_id: str,
        *,
        overlap: timedelta | None = None,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> NewKey:
        """A new secret for the key; the old one works for `overlap` (default 24 h)."""
        op = _ops_admin.rotate_key(self._core.tenant(tenant), key_id, overlap, reason)
        return await self._run(op, timeout)

    # -- service accounts (ServiceAccountsService) ------------------------------------------

    async def create_service_account(
        self,
        account_id: str,
        *,
        description: str = "",
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> ServiceAccount:
        """A new service account, the subject `serviceaccount:<account_id>` in decisions."""
        op = _ops_accounts.create_service_account(
            self._core.tenant(tenant), account_id, description, reason
        )
        return await self._run(op, timeout)

    async def get_service_account(
        self, account_id: str, *, tenant: str | None = None, timeout: Timeout = "default"
    ) -> ServiceAccount:
        op = _ops_accounts.get_service_account(self._core.tenant(tenant), account_id)
        return await self._run(op, timeout)

    async def list_service_accounts(
        self,
        *,
        tenant: str | None = None,
        limit: int = 0,
        cursor: str = "",
        timeout: Timeout = "default",
    ) -> Page[ServiceAccount]:
        op = _ops_accounts.list_service_accounts(self._core.tenant(tenant), limit, cursor)
        return await self._run(op, timeout)

    async def disable_service_account(
        self,
        account_id: str,
        *,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> ServiceAccountChange:
        """Deny the account everything and refuse its keys, until enabled again."""
        op = _ops_accounts.set_service_account_disabled(
            self._core.tenant(tenant), account_id, True, reason
        )
        return await self._run(op, timeout)

    async def enable_service_account(
        self,
        account_id: str,
        *,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> ServiceAccountChange:
        op = _ops_accounts.set_service_account_disabled(
            self._core.tenant(tenant), account_id, False, reason
        )
        return await self._run(op, timeout)

    async def delete_service_account(
        self,
        account_id: str,
        *,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> ServiceAccountDeletion:
        """Remove the account's grants, revoke its keys, then the account, for good."""
        op = _ops_accounts.delete_service_account(self._core.tenant(tenant), account_id, reason)
        return await self._run(op, timeout)

    async def create_service_account_key(
        self,
        account_id: str,
        *,
        scopes: Iterable[str],
        description: str = "",
        expire_time: datetime | None = None,
        reason: str = "",
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> NewKey:
        """A new key owned by the account; rotate and revoke it with rotate_key/revoke_key."""
        op = _ops_accounts.create_service_account_key(
            self._core.tenant(tenant), account_id, scopes, description, expire_time, reason
        )
        return await self._run(op, timeout)

    async def list_service_account_keys(
        self, account_id: str, *, tenant: str | None = None, timeout: Timeout = "default"
    ) -> tuple[ApiKey, ...]:
        op = _ops_accounts.list_service_account_keys(self._core.tenant(tenant), account_id)
        return await self._run(op, timeout)

    async def report_service_accounts(
        self,
        *,
        window: timedelta | None = None,
        tenant: str | None = None,
        timeout: Timeout = "default",
    ) -> ServiceAccountReport:
        """Unused and over-privileged accounts over `window` (default 30 days)."""
        op = _ops_accounts.report_service_accounts(self._core.tenant(tenant), window)
        return await self._run(op, timeout)
