"""Service accounts behind ServiceAccountsService, free of gRPC (docs/identity.md).

A service account is a non-human identity of one tenant (a workload, an agent). It is:

- a row in the store (`store/service_accounts.py`): id, description, disabled or not;
- a subject of decisions, `serviceaccount:<id>`: relationships and bindings name it, and
  its disablement is the subject lifecycle's suspension, its deletion the lifecycle's
  deprovisioning (service/lifecycle.py), so decisions deny it by the same rules as a
  user, from the returned token on, cached answers included;
- the owner of API keys: ordinary keys bound to its tenant (KeyAdmin makes, rotates and
  revokes them), refused while the account is disabled (the key store reads the
  account's disabled time with each key, so enabling it again restores them).

A key authenticates the workload that calls this API; it does not make the account the
subject of the checks it asks (a gateway asks about its users). A workload that acts for
a user names itself in the check's delegation chain (`agents`).

Every change is an admin record in the tenant's decision log: the account's own, plus
those of the lifecycle and key changes it is made of.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from authz_service.credentials import ApiKey, Scope
from authz_service.errors import AuthzError, FailedPrecondition, InvalidArgument, Unavailable, echo
from authz_service.model import ObjectRef, Revision
from authz_service.service import methods
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.keys import KeyAdmin
from authz_service.service.lifecycle import LifecycleService
from authz_service.service.schemas import SchemaManager
from authz_service.store.protocol import Store
from authz_service.store.registry import require_active
from authz_service.store.service_accounts import ServiceAccountRecord, account_not_found

__all__ = [
    "SERVICE_ACCOUNT_TYPE",
    "AccountView",
    "Deleted",
    "ServiceAccountAdmin",
    "validate_account_id",
]

SERVICE_ACCOUNT_TYPE = "serviceaccount"
_ID_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_MAX_DESCRIPTION = 200


def validate_account_id(account_id: str, field: str = "account_id") -> str:
    if not _ID_RE.fullmatch(account_id):
        shown = account_id or "(empty)"
        raise InvalidArgument(
            f"service account id `{echo(shown)}` must be 1-64 lowercase letters, digits, "
            "`_` and `-`, starting with a letter",
            field=field,
            value=account_id,
        )
    return account_id


def _validate_description(text: str) -> str:
    if len(text) > _MAX_DESCRIPTION or not text.isprintable():
        raise InvalidArgument(
            f"description must be at most {_MAX_DESCRIPTION} printable characters",
            field="description",
            value=text,
        )
    return text


def subject_of(account_id: str) -> ObjectRef:
    return ObjectRef(SERVICE_ACCOUNT_TYPE, account_id)


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account as the API shows it: the row and the latest use of its keys."""

    record: ServiceAccountRecord
    last_key_use: datetime | None


@dataclass(frozen=True, slots=True)
class Deleted:
    revision: Revision
    removed_relationships: int
    revoked_key_ids: list[str]


def last_use(keys: Iterable[ApiKey]) -> datetime | None:
    times = [k.last_used_at for k in keys if k.last_used_at is not None]
    return max(times) if times else None


class ServiceAccountAdmin:
    def __init__(
        self,
        *,
        store: Store,
        schemas: SchemaManager,
        lifecycle: LifecycleService,
        keys: KeyAdmin,
        audit: AuditTrail,
        on_key_changed: Callable[[str], None] = lambda _key_id: None,
    ) -> None:
        self._store = store
        self._accounts = store.service_accounts
        self._schemas = schemas
        self._lifecycle = lifecycle
        self._keys = keys
        self._audit = audit
        self._on_key_changed = on_key_changed  # drops the key from this replica's caches

    async def create(
        self, tenant: str, account_id: str, description: str, call: CallInfo
    ) -> AccountView:
        started = time.perf_counter()
        validate_account_id(account_id)
        _validate_description(description)
        schema = await self._schemas.require()
        if SERVICE_ACCOUNT_TYPE not in schema.definitions:
            raise FailedPrecondition(
                f"the schema has no definition `{SERVICE_ACCOUNT_TYPE}`: add "
                f"`definition {SERVICE_ACCOUNT_TYPE} {{}}` so that grants can name accounts"
            )
        await require_active(self._store.tenants, tenant)
        record = await self._accounts.create(tenant, account_id, description)
        try:
            await self._record(
                tenant, call, methods.CREATE_SERVICE_ACCOUNT, account_id, started,
                description=description,
            )  # fmt: skip
        except AuthzError as exc:
            await self._accounts.delete(tenant, account_id)  # no account without its record
            raise Unavailable(
                f"service account not created: the decision log could not record it ({exc.message})"
            ) from exc
        return AccountView(record, None)

    async def get(self, tenant: str, account_id: str) -> AccountView:
        record = await self._find(tenant, account_id)
        return AccountView(record, last_use(await self.keys_of(tenant, account_id)))

    async def page(self, tenant: str, after: str, limit: int) -> list[AccountView]:
        records = await self._accounts.page(tenant, after, limit)
        owned = await self._owned_keys(tenant)
        return [AccountView(r, last_use(owned.get(r.account_id, ()))) for r in records]

    async def set_disabled(
        self, tenant: str, account_id: str, disabled: bool, reason: str, call: CallInfo
    ) -> tuple[AccountView, Revision]:
        """Disable: its keys are refused first, then the subject is suspended (decisions
        deny it from the returned token on). Enable (refused in a suspended tenant): the
        keys work again, then the subject is reactivated. Each step is idempotent, so a
        retry after a failure converges."""
        started = time.perf_counter()
        await self._find(tenant, account_id)
        subject = subject_of(account_id)
        if not disabled:
            await require_active(self._store.tenants, tenant)  # no credentials come back
        # The keys first: in a suspended tenant the subject's status (a relationship
        # write) is refused, and a disabled account's keys must stop working regardless.
        record = await self._accounts.set_disabled(tenant, account_id, disabled)
        keys = await self.keys_of(tenant, account_id)
        for key in keys:
            self._on_key_changed(key.key_id)
        if disabled:
            revision, _ = await self._lifecycle.suspend(tenant, subject, reason, call)
        else:
            revision, _ = await self._lifecycle.reactivate(tenant, subject, reason, call)
        action = methods.DISABLE_SERVICE_ACCOUNT if disabled else methods.ENABLE_SERVICE_ACCOUNT
        await self._record(tenant, call, action, account_id, started, reason=reason)
        return AccountView(record, last_use(keys)), revision

    async def delete(self, tenant: str, account_id: str, reason: str, call: CallInfo) -> Deleted:
        """Deprovision the subject (its grants go, it is denied everything), revoke its
        keys, then remove the row; a retry after a failure finishes the job."""
        started = time.perf_counter()
        await self._find(tenant, account_id)
        gone = await self._lifecycle.deprovision(tenant, subject_of(account_id), reason, call)
        revoked = []
        for key in await self.keys_of(tenant, account_id):
            if not key.revoked:
                await self._keys.revoke(call, tenant, key.key_id)
                revoked.append(key.key_id)
        await self._accounts.delete(tenant, account_id)
        removed = len(gone.relationships) + len(gone.bindings)
        await self._record(
            tenant, call, methods.DELETE_SERVICE_ACCOUNT, account_id, started,
            reason=reason, revoked_keys=revoked, removed_relationship_count=removed,
        )  # fmt: skip
        return Deleted(gone.revision, removed, revoked)

    async def create_key(
        self,
        caller: ApiKey | None,
        call: CallInfo,
        *,
        tenant: str,
        account_id: str,
        scopes: Iterable[Scope],
        description: str,
        expires_at: datetime | None,
    ) -> tuple[ApiKey, str]:
        record = await self._find(tenant, account_id)
        if record.disabled:
            raise FailedPrecondition(
                f"service account `{echo(account_id)}` is disabled: enable it first"
            )
        return await self._keys.create(
            caller,
            call,
            tenant=tenant,
            scopes=scopes,
            description=description,
            expires_at=expires_at,
            service_account=account_id,
        )

    async def keys_of(self, tenant: str, account_id: str) -> list[ApiKey]:
        return [k for k in await self._store.keys.list(tenant) if k.service_account == account_id]

    async def _owned_keys(self, tenant: str) -> dict[str, list[ApiKey]]:
        owned: dict[str, list[ApiKey]] = {}
        for key in await self._store.keys.list(tenant):
            if key.service_account is not None:
                owned.setdefault(key.service_account, []).append(key)
        return owned

    async def all_accounts(self, tenant: str) -> Sequence[AccountView]:
        """Every account of the tenant, page by page (for the report)."""
        found: list[AccountView] = []
        after = ""
        while page := await self.page(tenant, after, 500):
            found.extend(page)
            after = page[-1].record.account_id
        return found

    async def _find(self, tenant: str, account_id: str) -> ServiceAccountRecord:
        validate_account_id(account_id)
        record = await self._accounts.get(tenant, account_id)
        if record is None:
            raise account_not_found(tenant, account_id)
        return record

    async def _record(
        self,
        tenant: str,
        call: CallInfo,
        action: str,
        account_id: str,
        started: float,
        *,
        reason: str | None = None,
        **details: object,
    ) -> None:
        subject = str(subject_of(account_id))
        await self._audit.admin(
            tenant,
            call,
            action=action,
            resource=subject,
            subject=subject,
            reason=reason,
            revision=0,
            schema_version="",
            details=details,
            started=started,
        )
