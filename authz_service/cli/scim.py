"""`authz scim status|repair`: a tenant's SCIM sync status and drift, and its repair,
asked of a running server (TenancyService.GetScimSync / RepairScimDrift; docs/identity.md).

Exit status: `status` 0 when there is no drift, 1 when there is; `repair` 0; 2 on error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc

from authz_service.api.gen.authz.v1 import tenancy_pb2, tenancy_pb2_grpc
from authz_service.cli import client_tls
from authz_service.config import load_settings

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser("scim", help="SCIM sync status, drift and repair of a tenant")
    actions = parser.add_subparsers(dest="action", required=True)
    for name, text in (("status", "sync status and drift"), ("repair", "converge to the IdP")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--tenant", required=True)
        action.add_argument("--server", default="127.0.0.1:50051", help="host:port")
        action.add_argument("--api-key", default=None, help="bearer API key (AUTHZ_API_KEY)")
        if name == "repair":
            action.add_argument("--reason", required=True, help="why, for the decision log")
        client_tls.add_arguments(action)
    parser.set_defaults(handler=lambda args: asyncio.run(_run(args)))


def _objects(items: Any) -> list[str]:
    return [f"{o.object_type}:{o.object_id}" for o in items]


def _relationships(items: Any) -> list[str]:
    shown = []
    for r in items:
        subject = f"{r.subject.object.object_type}:{r.subject.object.object_id}"
        if r.subject.relation:
            subject += f"#{r.subject.relation}"
        shown.append(f"{r.resource.object_type}:{r.resource.object_id}#{r.relation}@{subject}")
    return shown


def _drift_lines(drift: tenancy_pb2.ScimDrift) -> list[str]:
    groups = (
        ("deactivated upstream, active here", _objects(drift.deactivated_upstream)),
        ("active upstream, inactive here", _objects(drift.inactive_here)),
        ("removed upstream", _relationships(drift.removed_upstream)),
        ("written outside SCIM", _relationships(drift.written_outside)),
        ("missing here", _relationships(drift.missing_here)),
    )
    return [f"{label}: {item}" for label, items in groups for item in items]


def _status_line(status: tenancy_pb2.ScimSyncStatus) -> str:
    def when(stamp: Any) -> str:
        return str(stamp.ToJsonString()) if stamp.seconds or stamp.nanos else "-"

    error = ""
    if status.last_error:
        error = f", last error {when(status.last_error_time)}: {status.last_error}"
    return (
        f"users {status.users} ({status.active_users} active), groups {status.groups}, "
        f"memberships {status.memberships}; last push {when(status.last_push)}, "
        f"last change {when(status.last_change)}{error}"
    )


async def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    metadata = client_tls.api_key_metadata(args, settings) or None
    async with client_tls.from_args(args, settings).aio_channel(args.server) as channel:
        stub = tenancy_pb2_grpc.TenancyServiceStub(channel)
        try:
            if args.action == "repair":
                request = tenancy_pb2.RepairScimDriftRequest(tenant=args.tenant, reason=args.reason)
                repaired = await stub.RepairScimDrift(request, metadata=metadata, timeout=60)
                for line in _drift_lines(repaired.repaired) or ["nothing to repair"]:
                    print(f"repaired: {line}")
                print(f"written at {repaired.written_at.token}")
                return 0
            sync = await stub.GetScimSync(
                tenancy_pb2.GetScimSyncRequest(tenant=args.tenant), metadata=metadata, timeout=60
            )
        except grpc.aio.AioRpcError as err:
            print(client_tls.failure(err), file=sys.stderr)
            return 2
    print(_status_line(sync.status))
    lines = _drift_lines(sync.drift)
    print("\n".join(lines) if lines else "no drift")
    return 1 if lines else 0
