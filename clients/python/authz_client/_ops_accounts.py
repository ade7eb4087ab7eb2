"""Operations of ServiceAccountsService: requests built and responses converted, shared
by the async and the blocking client. Every write is sent once (no idempotency key)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2

from authz_client import _results
from authz_client._ops import Unary, cursor, timestamp
from authz_client._stubs import service_accounts_pb2 as pb
from authz_client.types_accounts import (
    ServiceAccount,
    ServiceAccountChange,
    ServiceAccountDeletion,
    ServiceAccountFinding,
    ServiceAccountReport,
)
from authz_client.types_admin import ApiKey, NewKey, Page

__all__ = [
    "create_service_account",
    "create_service_account_key",
    "delete_service_account",
    "get_service_account",
    "list_service_account_keys",
    "list_service_accounts",
    "report_service_accounts",
    "set_service_account_disabled",
]

_SERVICE = "ServiceAccountsService"


def account(message: pb.ServiceAccount) -> ServiceAccount:
    obj = message.subject.object
    return ServiceAccount(
        account_id=message.account_id,
        description=message.description,
        subject=f"{obj.object_type}:{obj.object_id}",
        create_time=_results.time(message, "create_time"),
        disable_time=_results.time(message, "disable_time"),
        last_key_use_time=_results.time(message, "last_key_use_time"),
    )


def _finding(message: pb.ServiceAccountFinding) -> ServiceAccountFinding:
    return ServiceAccountFinding(
        account=account(message.account),
        unused=message.unused,
        last_decision_time=_results.time(message, "last_decision_time"),
        unexercised_grants=tuple(message.unexercised_grants),
        broad_grants=tuple(message.broad_grants),
    )


def _written(response: Any) -> str:
    token: str = response.written_at.token
    return token


def _change(response: Any) -> ServiceAccountChange:
    return ServiceAccountChange(account(response.account), _written(response))


def create_service_account(
    tenant: str, account_id: str, description: str, reason: str
) -> Unary[ServiceAccount]:
    request = pb.CreateServiceAccountRequest(
        tenant=tenant, account_id=account_id, description=description, reason=reason
    )
    return Unary(_SERVICE, "CreateServiceAccount", request, lambda r: account(r.account), False)


def get_service_account(tenant: str, account_id: str) -> Unary[ServiceAccount]:
    request = pb.GetServiceAccountRequest(tenant=tenant, account_id=account_id)
    return Unary(_SERVICE, "GetServiceAccount", request, lambda r: account(r.account))


def list_service_accounts(
    tenant: str, limit: int, cursor_token: str
) -> Unary[Page[ServiceAccount]]:
    request = pb.ListServiceAccountsRequest(tenant=tenant, limit=limit, cursor=cursor(cursor_token))
    return Unary(
        _SERVICE,
        "ListServiceAccounts",
        request,
        lambda r: Page(tuple(account(a) for a in r.accounts), r.next_cursor.token),
    )


def set_service_account_disabled(
    tenant: str, account_id: str, disabled: bool, reason: str
) -> Unary[ServiceAccountChange]:
    request: pb.DisableServiceAccountRequest | pb.EnableServiceAccountRequest
    if disabled:
        request = pb.DisableServiceAccountRequest(
            tenant=tenant, account_id=account_id, reason=reason
        )
    else:
        request = pb.EnableServiceAccountRequest(
            tenant=tenant, account_id=account_id, reason=reason
        )
    method = "DisableServiceAccount" if disabled else "EnableServiceAccount"
    return Unary(_SERVICE, method, request, _change, False, tenant, _written)


def delete_service_account(
    tenant: str, account_id: str, reason: str
) -> Unary[ServiceAccountDeletion]:
    request = pb.DeleteServiceAccountRequest(tenant=tenant, account_id=account_id, reason=reason)
    return Unary(
        _SERVICE,
        "DeleteServiceAccount",
        request,
        lambda r: ServiceAccountDeletion(
            _written(r), r.removed_relationship_count, tuple(r.revoked_key_ids)
        ),
        False,
        tenant,
        _written,
    )


def create_service_account_key(
    tenant: str,
    account_id: str,
    scopes: Iterable[str],
    description: str,
    expire_time: datetime | None,
    reason: str,
) -> Unary[NewKey]:
    request = pb.CreateServiceAccountKeyRequest(
        tenant=tenant,
        account_id=account_id,
        scopes=list(scopes),
        description=description,
        expire_time=timestamp(expire_time, "expire_time"),
        reason=reason,
    )
    return Unary(
        _SERVICE,
        "CreateServiceAccountKey",
        request,
        lambda r: NewKey(_results.api_key(r.key), r.secret),
        False,
    )


def list_service_account_keys(tenant: str, account_id: str) -> Unary[tuple[ApiKey, ...]]:
    request = pb.ListServiceAccountKeysRequest(tenant=tenant, account_id=account_id)
    return Unary(
        _SERVICE,
        "ListServiceAccountKeys",
        request,
        lambda r: tuple(_results.api_key(k) for k in r.keys),
    )


def report_service_accounts(tenant: str, window: timedelta | None) -> Unary[ServiceAccountReport]:
    duration = None
    if window is not None:
        duration = duration_pb2.Duration()
        duration.FromTimedelta(window)
    request = pb.ReportServiceAccountsRequest(tenant=tenant, window=duration)
    return Unary(
        _SERVICE,
        "ReportServiceAccounts",
        request,
        lambda r: ServiceAccountReport(
            tuple(_finding(f) for f in r.findings),
            _results.time(r, "since_time"),
            r.account_count,
            r.decision_log_read,
        ),
    )
