"""`authz keys ... --server HOST:PORT`: the key commands as thin clients of KeysService.

With `--server`, `create`, `list`, `revoke` and `rotate` call the running server's RPCs
with an admin key (`--api-key`, else AUTHZ_API_KEY): the server checks the key's scope
and tenant, applies the change and records it in its own decision log. Without
`--server`, `create`, `list` and `revoke` keep talking to the database directly: that
path is for bootstrap (the first platform admin key) and recovery. See docs/auth.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from authz_service.api.gen.authz.v1 import keys_pb2, keys_pb2_grpc
from authz_service.cli import client_tls
from authz_service.config import load_settings
from authz_service.credentials import ALL_TENANTS
from authz_service.errors import InvalidArgument, echo

__all__ = [
    "add_key_tenant",
    "expiry",
    "remote",
    "rotate_needs_server",
    "rows",
    "via_server",
    "whole_number",
]


def _tenant(args: argparse.Namespace) -> str:
    return ALL_TENANTS if getattr(args, "all_tenants", False) else (args.tenant or "")


def _time(msg: Any, present: bool) -> str:
    if not present:
        return "-"
    return str(msg.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def rows(keys: list[keys_pb2.ApiKeyInfo]) -> list[tuple[str, ...]]:
    """The table `authz keys list --server` prints."""
    table: list[tuple[str, ...]] = [
        ("KEY_ID", "TENANT", "SCOPES", "CREATED", "EXPIRES", "REVOKED", "LAST_USED", "NAME")
    ]
    for key in keys:
        table.append(
            (
                key.key_id,
                key.tenant,
                ",".join(key.scopes),
                _time(key.create_time, True),
                _time(key.expire_time, key.HasField("expire_time")),
                _time(key.revoke_time, key.HasField("revoke_time")),
                _time(key.last_use_time, key.HasField("last_use_time")),
                key.description,
            )
        )
    return table


def expiry(text: str | None) -> Any:
    """`--expires` as a Timestamp (None when not given)."""
    if not text:
        return None
    from google.protobuf.timestamp_pb2 import Timestamp

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"--expires `{echo(text)}` is not an ISO 8601 time (2027-01-31T00:00:00Z)",
            field="expires",
            value=text,
        ) from None
    stamp = Timestamp()
    try:
        stamp.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
    except (OverflowError, ValueError):  # in UTC before year 1 or after year 9999
        raise InvalidArgument(
            f"--expires `{echo(text)}` is out of range (0001-01-01 to 9999-12-31 in UTC)",
            field="expires",
            value=text,
        ) from None
    return stamp


def whole_number(unit: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse `type`: a whole number of `unit` from `low` to `high`, else refused
    naming the option (exit 2) rather than failing as the request is built."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{echo(text)}` is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"`{echo(text)}` is not from {low} to {high} {unit}")
        return value

    return parse


async def _call(args: argparse.Namespace) -> list[str]:
    """The lines to print on stdout; the secret, when there is one, is the only line."""
    settings = load_settings()
    metadata = client_tls.api_key_metadata(args, settings) or None
    tenant = _tenant(args)
    async with client_tls.from_args(args, settings).aio_channel(args.server) as channel:
        stub = keys_pb2_grpc.KeysServiceStub(channel)
        command = args.keys_command
        if command == "create":
            created = await stub.CreateKey(
                keys_pb2.CreateKeyRequest(
                    tenant=tenant,
                    scopes=[s.strip() for s in args.scopes.split(",") if s.strip()],
                    description=args.name,
                    expire_time=expiry(args.expires),
                    reason=args.reason,
                ),
                metadata=metadata,
                timeout=10,
            )
            print(f"created key `{created.key.key_id}`; shown only this once", file=sys.stderr)
            return [created.secret]
        if command == "rotate":
            request = keys_pb2.RotateKeyRequest(
                tenant=tenant, key_id=args.key_id, reason=args.reason
            )
            if args.overlap is not None:
                request.overlap.CopyFrom(Duration(seconds=args.overlap))
            rotated = await stub.RotateKey(request, metadata=metadata, timeout=10)
            until = _time(
                rotated.key.previous_secret_expire_time,
                rotated.key.HasField("previous_secret_expire_time"),
            )
            print(
                f"rotated key `{rotated.key.key_id}`; the previous secret works until {until}; "
                "the new key above is shown only this once",
                file=sys.stderr,
            )
            return [rotated.secret]
        if command == "revoke":
            revoked = await stub.RevokeKey(
                keys_pb2.RevokeKeyRequest(tenant=tenant, key_id=args.key_id, reason=args.reason),
                metadata=metadata,
                timeout=10,
            )
            print(f"revoked key `{revoked.key.key_id}`", file=sys.stderr)
            return []
        found: list[keys_pb2.ApiKeyInfo] = []
        listing = keys_pb2.ListKeysRequest(tenant=tenant, limit=1000)
        while True:
            page = await stub.ListKeys(listing, metadata=metadata, timeout=10)
            found += page.keys
            if not page.HasField("next_cursor"):
                break
            listing.cursor.CopyFrom(page.next_cursor)
        table = rows(found)
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
        return [
            "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
            for row in table
        ]


def remote(args: argparse.Namespace) -> int:
    try:
        lines = asyncio.run(_call(args))
    except grpc.aio.AioRpcError as err:
        print(client_tls.failure(err), file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


def add_key_tenant(parser: argparse.ArgumentParser) -> None:
    """With --server, the tenant the key belongs to (the RPC is tenant-scoped)."""
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--tenant", help="with --server: the tenant the key belongs to")
    bound.add_argument("--all-tenants", action="store_true", help="with --server: a platform key")


def via_server(direct: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The RPC client with --server; the direct-database path (bootstrap) without."""

    def handler(args: argparse.Namespace) -> int:
        if args.server:
            return remote(args)
        return direct(args)

    return handler


def rotate_needs_server(_args: argparse.Namespace) -> int:
    raise InvalidArgument(
        "rotate works through a running server only: pass --server and an admin --api-key",
        field="server",
    )
