"""`authz service-accounts ...`: a tenant's service accounts, asked of a running server
(ServiceAccountsService; docs/identity.md "Service accounts").

    create ID [--description TEXT]      list            get ID
    disable ID --reason TEXT            enable ID --reason TEXT
    delete ID --reason TEXT             create-key ID --scopes check[,..] [--expires TIME]
    keys ID                             report [--window-days N]

Every command takes `--tenant`, `--server` (host:port), `--api-key` (else AUTHZ_API_KEY)
and the TLS options of the other clients. Rotate and revoke an account's keys with
`authz keys rotate|revoke --server`. Exit status: 0 done (`report`: nothing flagged),
1 `report` flagged an account, 2 an error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from authz_service.api.gen.authz.v1 import (
    service_accounts_pb2 as pb,
)
from authz_service.api.gen.authz.v1 import (
    service_accounts_pb2_grpc as pb_grpc,
)
from authz_service.cli import client_tls
from authz_service.cli.keys_remote import expiry, rows, whole_number
from authz_service.config import load_settings

__all__ = ["register"]

# The server's limit on ReportServiceAccountsRequest.window (docs/identity.md).
_MAX_WINDOW_DAYS = 400

_WITH_ID = ("create", "get", "disable", "enable", "delete", "create-key", "keys")
_WITH_REASON = ("disable", "enable", "delete")


def register(sub: Any) -> None:
    parser = sub.add_parser("service-accounts", help="a tenant's service accounts (workloads)")
    actions = parser.add_subparsers(dest="action", required=True)
    for name in (*_WITH_ID, "list", "report"):
        action = actions.add_parser(name)
        action.add_argument("--tenant", required=True)
        action.add_argument("--server", default="127.0.0.1:50051", help="host:port")
        action.add_argument("--api-key", default=None, help="bearer API key (AUTHZ_API_KEY)")
        client_tls.add_arguments(action)
        if name in _WITH_ID:
            action.add_argument("account_id")
        if name in _WITH_REASON:
            action.add_argument("--reason", required=True, help="why, for the decision log")
        if name in ("create", "create-key"):
            action.add_argument("--description", default="")
            action.add_argument("--reason", default="", help="why, for the decision log")
        if name == "create-key":
            action.add_argument("--scopes", required=True, help="e.g. check or check,write")
            action.add_argument("--expires", default=None, help="ISO 8601 time")
        if name == "report":
            action.add_argument(
                "--window-days",
                type=whole_number("days", 1, _MAX_WINDOW_DAYS),
                default=30,
                help=f"days of use to look at, 1 to {_MAX_WINDOW_DAYS} (default 30)",
            )
    parser.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except grpc.aio.AioRpcError as err:
        print(client_tls.failure(err), file=sys.stderr)
        return 2


def _when(msg: Any, present: bool) -> str:
    return msg.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if present else "-"


def _account_line(a: pb.ServiceAccount) -> str:
    state = f"disabled {_when(a.disable_time, True)}" if a.HasField("disable_time") else "enabled"
    used = _when(a.last_key_use_time, a.HasField("last_key_use_time"))
    return f"{a.account_id}  {state}  last key use {used}  {a.description}".rstrip()


def _finding_lines(f: pb.ServiceAccountFinding) -> list[str]:
    seen = _when(f.last_decision_time, f.HasField("last_decision_time"))
    head = f"{f.account.account_id}: {'UNUSED' if f.unused else 'used'} (last decision {seen})"
    return [
        head,
        *(f"  unexercised: {g}" for g in f.unexercised_grants),
        *(f"  broad: {g}" for g in f.broad_grants),
    ]


async def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    options: dict[str, Any] = {"timeout": 60}
    if metadata := client_tls.api_key_metadata(args, settings):
        options["metadata"] = metadata
    tenant, action = args.tenant, args.action
    async with client_tls.from_args(args, settings).aio_channel(args.server) as channel:
        stub = pb_grpc.ServiceAccountsServiceStub(channel)
        if action == "report":
            window = Duration(seconds=args.window_days * 86_400)
            report = await stub.ReportServiceAccounts(
                pb.ReportServiceAccountsRequest(tenant=tenant, window=window), **options
            )
            for finding in report.findings:
                print("\n".join(_finding_lines(finding)))
            log = "" if report.decision_log_read else " (decision log not read: key use only)"
            print(f"{len(report.findings)} of {report.account_count} accounts flagged{log}")
            return 1 if report.findings else 0
        if action == "list":
            listing = pb.ListServiceAccountsRequest(tenant=tenant, limit=1000)
            while True:
                page = await stub.ListServiceAccounts(listing, **options)
                for account in page.accounts:
                    print(_account_line(account))
                if not page.HasField("next_cursor"):
                    return 0
                listing.cursor.CopyFrom(page.next_cursor)
        account_id = args.account_id
        if action == "create-key":
            created = await stub.CreateServiceAccountKey(
                pb.CreateServiceAccountKeyRequest(
                    tenant=tenant,
                    account_id=account_id,
                    scopes=[s.strip() for s in args.scopes.split(",") if s.strip()],
                    description=args.description,
                    expire_time=expiry(args.expires),
                    reason=args.reason,
                ),
                **options,
            )
            print(f"created key `{created.key.key_id}`; shown only this once", file=sys.stderr)
            print(created.secret)
            return 0
        if action == "keys":
            listed = await stub.ListServiceAccountKeys(
                pb.ListServiceAccountKeysRequest(tenant=tenant, account_id=account_id), **options
            )
            for row in rows(list(listed.keys)):
                print("  ".join(row).rstrip())
            return 0
        if action == "delete":
            deleted = await stub.DeleteServiceAccount(
                pb.DeleteServiceAccountRequest(
                    tenant=tenant, account_id=account_id, reason=args.reason
                ),
                **options,
            )
            revoked = ", ".join(deleted.revoked_key_ids) or "none"
            print(
                f"deleted `{account_id}`: {deleted.removed_relationship_count} relationships "
                f"removed, keys revoked: {revoked}; written at {deleted.written_at.token}"
            )
            return 0
        print(_account_line(await _change(stub, args, options)))
        return 0


async def _change(
    stub: pb_grpc.ServiceAccountsServiceAsyncStub,
    args: argparse.Namespace,
    options: dict[str, Any],
) -> pb.ServiceAccount:
    """create, get, disable, enable: the account afterwards."""
    tenant, account_id = args.tenant, args.account_id
    if args.action == "create":
        request = pb.CreateServiceAccountRequest(
            tenant=tenant, account_id=account_id, description=args.description, reason=args.reason
        )
        return (await stub.CreateServiceAccount(request, **options)).account
    if args.action == "disable":
        disabled = await stub.DisableServiceAccount(
            pb.DisableServiceAccountRequest(
                tenant=tenant, account_id=account_id, reason=args.reason
            ),
            **options,
        )
        return disabled.account
    if args.action == "enable":
        enabled = await stub.EnableServiceAccount(
            pb.EnableServiceAccountRequest(
                tenant=tenant, account_id=account_id, reason=args.reason
            ),
            **options,
        )
        return enabled.account
    got = await stub.GetServiceAccount(
        pb.GetServiceAccountRequest(tenant=tenant, account_id=account_id), **options
    )
    return got.account
