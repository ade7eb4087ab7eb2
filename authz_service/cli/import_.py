"""`authz import FILE --tenant T`: bulk-load relationships into one tenant, atomically.

FILE is a SpiceDB validation file (YAML, its `relationships` block) or NDJSON (one
`{"resource": ..., "relation": ..., "subject": ...}` object per line); see
docs/storage.md. All rows are written at one new revision, or none are.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from pathlib import Path
from typing import Any

from authz_service.cli.migrate import (
    add_create_tenant_argument,
    add_database_arguments,
    database_url,
    require_tenant,
)
from authz_service.errors import PATH_CHARS, InvalidArgument, echo

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "import",
        help="bulk-load relationships from a validation file or NDJSON",
        description="Load relationships into one tenant at one new revision (create or "
        "replace), all or nothing.",
    )
    parser.add_argument("file", type=Path, help="a .yaml validation file or .ndjson")
    parser.add_argument("--tenant", required=True, help="tenant that receives the data")
    parser.add_argument(
        "--format", choices=["auto", "yaml", "ndjson"], default="auto", help="default: by suffix"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_create_tenant_argument(parser)
    add_database_arguments(parser)
    parser.set_defaults(handler=_handle)


async def _schema_check(store: Any) -> Any:
    """Every row checked against the current schema as WriteRelationships checks it
    (relation, subject types, wildcard, caveat and its context's types, expiration);
    None before any schema is written: there is nothing to check against yet."""
    from authz_service.schema import compile_schema
    from authz_service.schema.relationships import check_relationship

    record = await store.read_schema()
    if record is None:
        return None
    schema = await asyncio.to_thread(
        compile_schema, record.text, max_expression_depth=None, allow_undefined_functions=True
    )
    return functools.partial(check_relationship, schema)


def _handle(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise InvalidArgument(
            f"`{echo(path, PATH_CHARS)}` is not a readable file", field="file", value=str(path)
        )
    return asyncio.run(_import(args, path, _count_lines(path)))


_COUNT_BLOCK = 1 << 20


def _count_lines(path: Path) -> int:
    """The progress bar's total: lines in `path` (a last one without a newline counts),
    counted in blocks rather than line by line, so that a large file starts sooner."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(_COUNT_BLOCK):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


async def _import(args: argparse.Namespace, path: Path, lines: int) -> int:
    from tqdm import tqdm

    from authz_service.store import postgres
    from authz_service.store.postgres.importer import import_file

    async with database_url(args) as dsn:
        await postgres.migrate(dsn)
        store = await postgres.connect(dsn, min_size=1, max_size=1)
        try:
            if not args.create_tenant:
                await require_tenant(store.tenants, args.tenant, False)
            # else the import registers it in its own transaction: a failed import
            # leaves no tenant behind (docs/storage.md).
            check = await _schema_check(store)
            with tqdm(
                total=lines,
                unit=" lines",
                file=sys.stderr,
                disable=args.no_progress,
                desc="importing",
            ) as bar:
                result = await import_file(
                    store.db,
                    args.tenant,
                    path,
                    None if args.format == "auto" else args.format,
                    on_line=lambda line: bar.update(line - bar.n),
                    check=check,
                    create_tenant=args.create_tenant,
                )
                bar.update(lines - bar.n)
        finally:
            await store.close()
    print(
        f"imported {result.count} relationships ({result.replaced} replaced) into tenant "
        f"`{args.tenant}` at revision {result.revision} in {result.seconds:.1f}s",
        file=sys.stderr,
    )
    return 0
