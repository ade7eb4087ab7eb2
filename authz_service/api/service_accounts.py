"""ServiceAccountsService: a tenant's service accounts over the API (docs/identity.md).

Thin: validate and convert the request, call the service-account admin or reporter,
convert the answer. Key fields are validated exactly as KeysService validates them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from authz_service.api import convert
from authz_service.api.auth import current_key
from authz_service.api.calls import bind_deadline, call_info, unary_rpc
from authz_service.api.cursors import CursorScope
from authz_service.api.gen.authz.v1 import (
    core_pb2,
)
from authz_service.api.gen.authz.v1 import (
    service_accounts_pb2 as pb,
)
from authz_service.api.gen.authz.v1 import (
    service_accounts_pb2_grpc as pb_grpc,
)
from authz_service.api.keys import key_expiry, key_scopes, key_to_proto
from authz_service.service import methods
from authz_service.service.audit import CallInfo
from authz_service.service.pages import page_limit
from authz_service.service.service_account_report import Finding, ServiceAccountReporter
from authz_service.service.service_accounts import (
    SERVICE_ACCOUNT_TYPE,
    AccountView,
    ServiceAccountAdmin,
    validate_account_id,
)

__all__ = ["ServiceAccountsServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]
DEFAULT_WINDOW = timedelta(days=30)
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=400)


def _time(value: datetime | None, msg: Any) -> None:
    if value is not None:
        msg.FromDatetime(value.astimezone(UTC))


def _account(view: AccountView) -> pb.ServiceAccount:
    record = view.record
    msg = pb.ServiceAccount(
        account_id=record.account_id,
        description=record.description,
        subject=core_pb2.SubjectReference(
            object=core_pb2.ObjectReference(
                object_type=SERVICE_ACCOUNT_TYPE, object_id=record.account_id
            )
        ),
    )
    _time(record.created_at, msg.create_time)
    _time(record.disabled_at, msg.disable_time)
    _time(view.last_key_use, msg.last_key_use_time)
    return msg


def _finding(found: Finding) -> pb.ServiceAccountFinding:
    msg = pb.ServiceAccountFinding(
        account=_account(found.account),
        unused=found.unused,
        unexercised_grants=found.unexercised,
        broad_grants=found.broad,
    )
    _time(found.last_decision, msg.last_decision_time)
    return msg


def _window(request: pb.ReportServiceAccountsRequest) -> timedelta:
    if not request.HasField("window"):
        return DEFAULT_WINDOW
    return convert.duration(
        request.window, "window", MIN_WINDOW, MAX_WINDOW, "between 1 minute and 400 days"
    )


class ServiceAccountsServicer(pb_grpc.ServiceAccountsServiceServicer):
    def __init__(
        self,
        admin: ServiceAccountAdmin,
        reporter: ServiceAccountReporter,
        *,
        default_deadline_s: float,
    ) -> None:
        self._admin = admin
        self._reporter = reporter
        self._deadline = default_deadline_s

    def _call(self, context: Ctx, reason: str) -> CallInfo:
        return call_info(context, self._deadline, reason=convert.reason(reason) or None)

    @unary_rpc
    async def CreateServiceAccount(
        self, request: pb.CreateServiceAccountRequest, context: Ctx
    ) -> pb.CreateServiceAccountResponse:
        view = await self._admin.create(
            convert.tenant(request.tenant),
            request.account_id,
            request.description,
            self._call(context, request.reason),
        )
        return pb.CreateServiceAccountResponse(account=_account(view))

    @unary_rpc
    async def GetServiceAccount(
        self, request: pb.GetServiceAccountRequest, context: Ctx
    ) -> pb.GetServiceAccountResponse:
        bind_deadline(context, self._deadline)  # bounds its database reads
        view = await self._admin.get(convert.tenant(request.tenant), request.account_id)
        return pb.GetServiceAccountResponse(account=_account(view))

    @unary_rpc
    async def ListServiceAccounts(
        self, request: pb.ListServiceAccountsRequest, context: Ctx
    ) -> pb.ListServiceAccountsResponse:
        bind_deadline(context, self._deadline)  # bounds its database reads
        tenant = convert.tenant(request.tenant)
        limit = page_limit(request.limit)
        scope = CursorScope.of(methods.LIST_SERVICE_ACCOUNTS, tenant, request)
        after = scope.resume_after(request.cursor)
        # One more than the page, to know whether another page follows.
        found = await self._admin.page(tenant, after, limit + 1)
        response = pb.ListServiceAccountsResponse(accounts=[_account(v) for v in found[:limit]])
        if len(found) > limit:
            response.next_cursor.CopyFrom(scope.issue(0, found[limit - 1].record.account_id))
        return response

    @unary_rpc
    async def DisableServiceAccount(
        self, request: pb.DisableServiceAccountRequest, context: Ctx
    ) -> pb.DisableServiceAccountResponse:
        tenant = convert.tenant(request.tenant)
        call = self._call(context, request.reason)
        view, revision = await self._admin.set_disabled(
            tenant, request.account_id, True, request.reason, call
        )
        return pb.DisableServiceAccountResponse(
            account=_account(view), written_at=convert.token(tenant, revision)
        )

    @unary_rpc
    async def EnableServiceAccount(
        self, request: pb.EnableServiceAccountRequest, context: Ctx
    ) -> pb.EnableServiceAccountResponse:
        tenant = convert.tenant(request.tenant)
        call = self._call(context, request.reason)
        view, revision = await self._admin.set_disabled(
            tenant, request.account_id, False, request.reason, call
        )
        return pb.EnableServiceAccountResponse(
            account=_account(view), written_at=convert.token(tenant, revision)
        )

    @unary_rpc
    async def DeleteServiceAccount(
        self, request: pb.DeleteServiceAccountRequest, context: Ctx
    ) -> pb.DeleteServiceAccountResponse:
        tenant = convert.tenant(request.tenant)
        call = self._call(context, request.reason)
        done = await self._admin.delete(tenant, request.account_id, request.reason, call)
        return pb.DeleteServiceAccountResponse(
            written_at=convert.token(tenant, done.revision),
            removed_relationship_count=done.removed_relationships,
            revoked_key_ids=done.revoked_key_ids,
        )

    @unary_rpc
    async def CreateServiceAccountKey(
        self, request: pb.CreateServiceAccountKeyRequest, context: Ctx
    ) -> pb.CreateServiceAccountKeyResponse:
        tenant = convert.tenant(request.tenant)
        validate_account_id(request.account_id)
        scopes = key_scopes(request.scopes)
        expires = key_expiry(request)
        key, secret = await self._admin.create_key(
            current_key(),
            self._call(context, request.reason),
            tenant=tenant,
            account_id=request.account_id,
            scopes=scopes,
            description=request.description,
            expires_at=expires,
        )
        return pb.CreateServiceAccountKeyResponse(
            key=key_to_proto(key, datetime.now(UTC)), secret=secret
        )

    @unary_rpc
    async def ListServiceAccountKeys(
        self, request: pb.ListServiceAccountKeysRequest, context: Ctx
    ) -> pb.ListServiceAccountKeysResponse:
        bind_deadline(context, self._deadline)  # bounds its database reads
        tenant = convert.tenant(request.tenant)
        await self._admin.get(tenant, request.account_id)  # NOT_FOUND for an unknown one
        keys = await self._admin.keys_of(tenant, request.account_id)
        ordered = sorted(keys, key=lambda k: k.key_id)
        now = datetime.now(UTC)
        return pb.ListServiceAccountKeysResponse(keys=[key_to_proto(k, now) for k in ordered])

    @unary_rpc
    async def ReportServiceAccounts(
        self, request: pb.ReportServiceAccountsRequest, context: Ctx
    ) -> pb.ReportServiceAccountsResponse:
        tenant = convert.tenant(request.tenant)
        call_info(context, self._deadline)  # binds the call's deadline to its reads
        report = await self._reporter.report(tenant, _window(request))
        response = pb.ReportServiceAccountsResponse(
            findings=[_finding(f) for f in report.findings],
            account_count=report.account_count,
            decision_log_read=report.log_read,
        )
        _time(report.since, response.since_time)
        return response
