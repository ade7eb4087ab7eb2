"""`authz migrate`: apply pending database migrations (forward only, safe to repeat, safe
to run from several replicas at once)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from authz_service.config import load_settings
from authz_service.errors import InvalidArgument, NotFound, echo
from authz_service.store.registry import TenantRegistry

__all__ = ["add_database_arguments", "database_url", "register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply pending database migrations in order; already applied ones are "
        "skipped, so running it again is harmless.",
    )
    add_database_arguments(parser)
    parser.set_defaults(handler=_handle)


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="PostgreSQL URL (default: $AUTHZ_DATABASE_URL; unset: the embedded server)",
    )
    parser.add_argument(
        "--data-dir", help="local state directory holding the embedded server (default .authz)"
    )


@asynccontextmanager
async def database_url(args: argparse.Namespace) -> AsyncIterator[str]:
    """The DSN the flags and environment select; starts the embedded server (and stops
    it afterwards, unless a running service still uses it) when no URL is configured."""
    from authz_service.store import postgres

    settings = load_settings(
        {
            "database_url": args.database_url,
            "data_dir": Path(args.data_dir) if args.data_dir else None,
        }
    )
    if settings.database_url.startswith("memory:"):
        raise InvalidArgument(
            "the in-memory store has no database", field="database_url", value="memory://"
        )
    if not settings.embedded:
        yield settings.database_url
        return
    embedded = await postgres.start_embedded(settings.data_dir / "pgdata")
    try:
        yield embedded.dsn
    finally:
        await embedded.aclose()


def _handle(args: argparse.Namespace) -> int:
    return asyncio.run(_migrate(args))


async def _migrate(args: argparse.Namespace) -> int:
    from authz_service.store import postgres

    async with database_url(args) as dsn:
        applied = await postgres.migrate(dsn)
    if applied:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}", file=sys.stderr)
    else:
        print("database is up to date", file=sys.stderr)
    return 0


def add_create_tenant_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--create-tenant",
        action="store_true",
        help="register the tenant first if it does not exist (otherwise an unknown "
        "tenant is refused: it is most likely a typo)",
    )


async def require_tenant(registry: TenantRegistry, tenant: str, create: bool) -> None:
    """NotFound for a tenant that does not exist, unless `create` registers it."""
    if await registry.get(tenant) is not None:
        return
    if not create:
        raise NotFound(
            f"tenant `{echo(tenant)}` does not exist: create it (TenantService.CreateTenant) "
            "or pass --create-tenant"
        )
    await registry.create(tenant)
