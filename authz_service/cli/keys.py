"""`authz keys create|list|revoke|rotate`: manage API keys.

With `--server HOST:PORT` every command is a thin client of the server's KeysService
(cli/keys_remote.py). Without it, `create`, `list` and `revoke` work directly in the
database: the bootstrap path for the first platform admin key, and for recovery.
Same database rules as `authz serve` and `authz migrate`: `--database-url`, else
`AUTHZ_DATABASE_URL`, else the embedded server in the data directory.

Creating and revoking a key are administrative changes. Unless the decision log is off
(`AUTHZ_DECISION_LOG=off`), each is appended, durably and hash-chained, to a log root of
the command's own: `<AUTHZ_LOG_DIR>-admin` (or `--log-dir`), in the key's tenant stream
(`_platform` for platform keys, as for schema writes). A running server owns its own
root and holds its writer lock, so the command cannot append there; the admin root is
verified and queried with the same tools. A key whose creation cannot be logged is
revoked again before the command fails. See docs/auth.md.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authz_service.cli import client_tls
from authz_service.cli.keys_remote import (
    add_key_tenant,
    rotate_needs_server,
    via_server,
    whole_number,
)
from authz_service.cli.migrate import (
    add_create_tenant_argument,
    add_database_arguments,
    database_url,
    require_tenant,
)
from authz_service.config import Settings, load_settings
from authz_service.credentials import ALL_TENANTS, ApiKey, Scope, new_key, parse_scopes
from authz_service.errors import AuthzError, InvalidArgument, Unavailable, echo

__all__ = ["admin_log_root", "register"]

PLATFORM_STREAM = "_platform"  # where platform-wide admin records go (see api/schema.py)


# The server's limit on RotateKeyRequest.overlap (authz_service.api.keys.MAX_OVERLAP).
_MAX_OVERLAP_S = 30 * 86_400


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "keys",
        help="create, list, revoke and rotate API keys",
        description="Manage the API keys callers present as `authorization: Bearer <key>`.",
    )
    actions = parser.add_subparsers(dest="keys_command", required=True)

    create = actions.add_parser("create", help="create a key and print it once")
    bound = create.add_mutually_exclusive_group(required=True)
    bound.add_argument("--tenant", help="the one tenant the key is valid for")
    bound.add_argument(
        "--all-tenants", action="store_true", help="a platform operator's key, valid everywhere"
    )
    create.add_argument(
        "--scopes", required=True, help="comma-separated: check, write, admin, audit, scim"
    )
    create.add_argument("--name", default="", help="what the key is for (shown by `list`)")
    create.add_argument("--expires", help="with --server: when the key stops working (ISO 8601)")
    add_create_tenant_argument(create)
    _common(create)
    create.set_defaults(handler=_create_either_way)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only keys bound to this tenant (`*`: platform keys)")
    _common(listing)
    listing.set_defaults(handler=via_server(_list))

    revoke = actions.add_parser("revoke", help="revoke a key; running servers refuse it soon")
    revoke.add_argument("key_id", help="the id shown by `create` and `list`")
    add_key_tenant(revoke)
    _common(revoke)
    revoke.set_defaults(handler=via_server(_revoke))

    rotate = actions.add_parser("rotate", help="give a key a new secret (needs --server)")
    rotate.add_argument("key_id", help="the id shown by `create` and `list`")
    rotate.add_argument(
        "--overlap",
        type=whole_number("seconds", 0, _MAX_OVERLAP_S),
        help=f"seconds the previous secret keeps working, 0 to {_MAX_OVERLAP_S} (default 86400)",
    )
    add_key_tenant(rotate)
    _common(rotate)
    rotate.set_defaults(handler=via_server(rotate_needs_server))


def _common(parser: argparse.ArgumentParser) -> None:
    add_database_arguments(parser)
    client_tls.add_arguments(parser)  # with --server
    parser.add_argument(
        "--server", help="host:port of a running server: use its KeysService RPCs instead"
    )
    parser.add_argument("--api-key", help="with --server: an admin key (AUTHZ_API_KEY)")
    parser.add_argument("--reason", default="", help="with --server: the admin record's reason")
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="decision log root for key changes (default: <AUTHZ_LOG_DIR>-admin)",
    )


def admin_log_root(settings: Settings) -> Path:
    """Where `authz keys` logs by default: a sibling of the server's log root."""
    log_dir = settings.decision_log_dir
    return log_dir.with_name(f"{log_dir.name}-admin")


# --- handlers ----------------------------------------------------------------------------


def _create_either_way(args: argparse.Namespace) -> int:
    """Options that only one of the two ways can honour are refused, not dropped: a key
    meant to expire must not be made one that never does."""
    if args.server and args.create_tenant:
        raise InvalidArgument(
            "--create-tenant works without --server only; through a server, create the "
            "tenant first (TenantService.CreateTenant)",
            field="create-tenant",
        )
    if args.expires and not args.server:
        raise InvalidArgument(
            "--expires works with --server only", field="expires", value=args.expires
        )
    return via_server(_create)(args)


def _create(args: argparse.Namespace) -> int:
    tenant = ALL_TENANTS if args.all_tenants else args.tenant
    if tenant == ALL_TENANTS and not args.all_tenants:
        raise InvalidArgument("use --all-tenants for a platform key", field="tenant", value="*")
    record, token = new_key(tenant=tenant, scopes=parse_scopes(args.scopes), name=args.name)
    stored = asyncio.run(_create_logged(args, record))
    print(token)  # stdout carries only the key, for scripts
    print(
        f"created key `{stored.key_id}` for {_bound(stored)} with scopes "
        f"{_scopes(stored)}; the key above is shown only this once",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = asyncio.run(_list_keys(args))
    rows = [("KEY_ID", "TENANT", "SCOPES", "CREATED", "REVOKED", "NAME")]
    for key in keys:
        rows.append(
            (
                key.key_id,
                key.tenant,
                _scopes(key),
                _time(key.created_at),
                _time(key.revoked_at) if key.revoked_at else "-",
                key.name,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    key = asyncio.run(_revoke_logged(args))
    print(
        f"revoked key `{key.key_id}` of {_bound(key)}; running servers refuse it, and end "
        "the streams it opened, once their key cache expires (AUTHZ_AUTH_CACHE_TTL_S, "
        "default 5 s)",
        file=sys.stderr,
    )
    return 0


# --- database and log ------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        {
            "database_url": args.database_url,
            "data_dir": Path(args.data_dir) if args.data_dir else None,
        }
    )


@asynccontextmanager
async def _keys(
    args: argparse.Namespace, *, migrate: bool = False, tenant: str | None = None
) -> AsyncIterator[Any]:
    """The key store; with `tenant`, after checking that the tenant exists (a key for a
    misspelled tenant would be useless), or registering it with --create-tenant."""
    from authz_service.store import postgres

    async with database_url(args) as dsn:
        if migrate:
            await postgres.migrate(dsn)
        store = await postgres.connect(dsn, min_size=1, max_size=1)
        try:
            if tenant is not None:
                await require_tenant(store.tenants, tenant, args.create_tenant)
            yield store.keys
        finally:
            await store.close()


@asynccontextmanager
async def _admin_log(args: argparse.Namespace) -> AsyncIterator[Any]:
    """An AuditTrail on the admin log root, or None when the decision log is off. Opened
    before the change, so that a log that cannot be written stops the command early."""
    from authz_service.decisionlog import DecisionLogConfig, DecisionLogWriter, LogMode
    from authz_service.service.audit import AuditTrail

    settings = _settings(args)
    if settings.log_mode == "off":
        yield None
        return
    signing = Path(settings.log_signing_key) if settings.log_signing_key else None
    writer = DecisionLogWriter(
        DecisionLogConfig(
            root=args.log_dir or admin_log_root(settings),
            mode=LogMode.DURABLE,
            signing_key_path=signing,
        )
    )
    await writer.start()
    try:
        yield AuditTrail(writer)
    finally:
        await writer.aclose()


async def _record(audit: Any, key: ApiKey, action: str) -> None:
    if audit is None:
        return
    from authz_service.service.audit import CallInfo

    await audit.admin(
        PLATFORM_STREAM if key.platform else key.tenant,
        CallInfo(),
        action=action,
        resource=f"api_key:{key.key_id}",
        subject=f"api_key:{key.key_id}",
        revision=0,
        schema_version="",
        details={
            "key_tenant": key.tenant,
            "scopes": sorted(s.value for s in key.scopes),
            "name": key.name,
            "operator": _operator(),
            "tool": "authz keys",
        },
        started=time.perf_counter(),
    )


async def _create_logged(args: argparse.Namespace, record: ApiKey) -> ApiKey:
    from authz_service.service.audit import log_failure

    bound = None if record.platform else record.tenant
    async with _admin_log(args) as audit, _keys(args, migrate=True, tenant=bound) as keys:
        stored: ApiKey = await keys.create(record)
        try:
            await _record(audit, stored, "create_api_key")
        except AuthzError as exc:
            await keys.revoke(stored.key_id)  # an unlogged key must not stay usable
            raise Unavailable(
                f"key not created: the decision log could not record it ({log_failure(exc)})"
            ) from exc
        return stored


async def _list_keys(args: argparse.Namespace) -> list[ApiKey]:
    async with _keys(args) as keys:
        return list(await keys.list(args.tenant))


async def _revoke_logged(args: argparse.Namespace) -> ApiKey:
    from authz_service.service.audit import log_failure

    async with _admin_log(args) as audit, _keys(args) as keys:
        key: ApiKey = await keys.revoke(args.key_id)
        try:
            await _record(audit, key, "revoke_api_key")
        except AuthzError as exc:
            # The revocation stands: refusing it because of the log would be worse.
            raise Unavailable(
                f"key `{echo(key.key_id)}` is revoked, but the decision log could not record it "
                f"({log_failure(exc)})"
            ) from exc
        return key


# --- formatting -------------------------------------------------------------------------


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (containers)
        return "unknown"


def _bound(key: ApiKey) -> str:
    return "all tenants" if key.platform else f"tenant `{key.tenant}`"


def _scopes(key: ApiKey) -> str:
    return ",".join(s.value for s in Scope if s in key.scopes)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
