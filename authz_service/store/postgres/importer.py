"""Bulk import of relationships: atomic, at one new revision, via COPY.

Input (see docs/storage.md):
- a SpiceDB validation file (YAML): the `relationships` key, one relationship per line
  in the text form `doc:1#viewer@user:ann[caveat:{...}][expiration:...]`, `//` comments;
- NDJSON: one JSON object per line, `{"resource": "doc:1", "relation": "viewer",
  "subject": "user:ann"}` plus optional `"caveat": {"name": ..., "context": {...}}` and
  `"expires_at": "<RFC 3339>"`.

Everything happens in one transaction: rows are parsed and streamed by COPY into a
temporary table, then the tenant is locked, its revision bumped once, and one UPDATE
plus one INSERT ... SELECT apply them with TOUCH semantics (create or replace). A bad
line, a duplicate or a lost connection rolls everything back: all or nothing. The tenant
lock is taken only after the COPY, so other writers wait only for the final statements.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from authz_service.errors import InvalidArgument
from authz_service.model import (
    CaveatRef,
    FrozenContext,
    Relationship,
    parse_object,
    parse_relationship,
    parse_subject,
    validate_relation_name,
)
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import translated
from authz_service.store.postgres.sql import KEY_COLUMNS, relationship_values
from authz_service.store.postgres.writes import bump_head

__all__ = [
    "Format",
    "ImportResult",
    "detect_format",
    "import_relationships",
    "read_ndjson",
    "read_relationships",
    "read_validation_file",
]

Format = Literal["yaml", "ndjson"]

_NDJSON_KEYS = {"resource", "relation", "subject", "caveat", "expires_at"}

_COLUMNS = (
    "line",
    "resource_type",
    "resource_id",
    "relation",
    "subject_type",
    "subject_id",
    "subject_relation",
    "caveat_name",
    "caveat_context",
    "expires_at",
)


@dataclass(frozen=True, slots=True)
class ImportResult:
    revision: int
    count: int  # relationships written (created or replaced)
    replaced: int  # of which already existed
    seconds: float


def detect_format(path: Path) -> Format:
    if path.suffix in (".yaml", ".yml"):
        return "yaml"
    if path.suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return "ndjson" if line.lstrip().startswith("{") else "yaml"
    return "ndjson"


def read_validation_file(path: Path) -> Iterator[tuple[int, Relationship]]:
    """(line number in the file, relationship) for each line of `relationships`."""
    text = path.read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"`{path}` is not valid YAML: {exc}", field="file") from None
    block = document.get("relationships") if isinstance(document, dict) else None
    if not isinstance(block, str):
        raise InvalidArgument(f"`{path}` has no `relationships` text block", field="file")
    offset = _block_offset(text)
    for number, line in enumerate(block.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        lineno = offset + number
        where = f"line {lineno}"
        yield lineno, _located(parse_relationship, stripped, where)


def _located(parse: Callable[[str, str], Relationship], text: str, where: str) -> Relationship:
    """`parse(text, where)`, with errors prefixed by the line they come from."""
    try:
        return parse(text, where)
    except InvalidArgument as exc:
        if exc.message.startswith(f"{where}:"):
            raise
        raise InvalidArgument(f"{where}: {exc.message}", field=where, value=exc.value) from None


def _block_offset(text: str) -> int:
    """Lines before the first line of the `relationships` block (for error messages)."""
    for index, line in enumerate(text.splitlines()):
        if line.startswith("relationships:") and line.rstrip().endswith(("|", "|-", "|+")):
            return index + 1
    return 0


def read_ndjson(path: Path) -> Iterator[tuple[int, Relationship]]:
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if line.strip():
                where = f"line {lineno}"
                yield lineno, _located(_ndjson_relationship, line, where)


def _ndjson_relationship(line: str, where: str) -> Relationship:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{where}: not valid JSON: {exc.msg}", field=where) from None
    if not isinstance(record, dict):
        raise InvalidArgument(f"{where}: must be a JSON object", field=where)
    unknown = set(record) - _NDJSON_KEYS
    missing = {"resource", "relation", "subject"} - set(record)
    if unknown or missing:
        problem = f"unknown key `{min(unknown)}`" if unknown else f"missing `{min(missing)}`"
        raise InvalidArgument(f"{where}: {problem}", field=where)
    fields: dict[str, Any] = record
    caveat = None
    if fields.get("caveat") is not None:
        caveat = _ndjson_caveat(fields["caveat"], where)
    expires = None
    if fields.get("expires_at") is not None:
        expires = _timestamp(str(fields["expires_at"]), where)
    return Relationship(
        parse_object(str(fields["resource"]), where),
        validate_relation_name(str(fields["relation"]), where),
        parse_subject(str(fields["subject"]), where),
        caveat,
        expires,
    )


def _timestamp(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidArgument(
            f"{where}: `expires_at` must be an RFC 3339 timestamp with a zone", field=where
        )
    return parsed


def _ndjson_caveat(raw: object, where: str) -> CaveatRef:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise InvalidArgument(f"{where}: `caveat` needs a string `name`", field=where)
    context = raw.get("context") or {}
    if not isinstance(context, dict):
        raise InvalidArgument(f"{where}: caveat `context` must be an object", field=where)
    return CaveatRef(raw["name"], FrozenContext(context))


def read_relationships(path: Path, fmt: Format | None = None) -> Iterator[tuple[int, Relationship]]:
    chosen = fmt or detect_format(path)
    return read_validation_file(path) if chosen == "yaml" else read_ndjson(path)


_DUPLICATE_SQL = f"""
SELECT min(line) AS first, max(line) AS second, {KEY_COLUMNS}
  FROM import_rows GROUP BY {KEY_COLUMNS} HAVING count(*) > 1 LIMIT 1
"""

_STAMP_SQL = """
UPDATE relationships AS r SET deleted_rev = $2 FROM import_rows AS u
 WHERE r.tenant = $1 AND r.deleted_rev IS NULL
   AND r.resource_type = u.resource_type AND r.resource_id = u.resource_id
   AND r.relation = u.relation AND r.subject_type = u.subject_type
   AND r.subject_id = u.subject_id AND r.subject_relation = u.subject_relation
"""

_INSERT_SQL = f"""
INSERT INTO relationships ({KEY_COLUMNS}, caveat_name, caveat_context, expires_at,
                           tenant, created_rev)
SELECT {KEY_COLUMNS}, caveat_name, caveat_context::jsonb, expires_at, $1, $2
  FROM import_rows
"""


async def import_relationships(
    db: Database,
    tenant: str,
    relationships: Iterable[tuple[int, Relationship]],
    *,
    on_line: Callable[[int], object] | None = None,
) -> ImportResult:
    """Write `relationships` ((line, relationship) pairs) to `tenant` at one revision.
    `on_line`, if given, is called with each row's line number (for a progress bar)."""
    started = time.perf_counter()

    def records() -> Iterator[tuple[object, ...]]:
        for line, rel in relationships:
            yield (line, *relationship_values(rel))
            if on_line is not None:
                on_line(line)

    with translated():
        async with db.acquire() as conn, conn.transaction():
            await conn.execute(
                "CREATE TEMPORARY TABLE import_rows (line integer, "
                + ", ".join(f'{c} text COLLATE "C"' for c in _COLUMNS[1:9])
                + ", expires_at timestamptz) ON COMMIT DROP"
            )
            await conn.copy_records_to_table("import_rows", records=records(), columns=_COLUMNS)
            await conn.execute("ANALYZE import_rows")
            revision = await bump_head(conn, tenant)
            duplicate = await conn.fetchrow(_DUPLICATE_SQL)
            if duplicate is not None:
                raise InvalidArgument(
                    f"lines {duplicate['first']} and {duplicate['second']} name the same "
                    "relationship",
                    field=f"line {duplicate['second']}",
                )
            replaced = await conn.execute(_STAMP_SQL, tenant, revision)
            inserted = await conn.execute(_INSERT_SQL, tenant, revision)
        # A bulk load can change the table's shape more than autovacuum notices in time;
        # fresh statistics keep the planner on the indexes (ANALYZE samples, so it stays
        # quick on big tables).
        async with db.acquire() as conn:
            await conn.execute("ANALYZE relationships")
    return ImportResult(
        revision,
        int(inserted.rsplit(" ", 1)[-1]),
        int(replaced.rsplit(" ", 1)[-1]),
        time.perf_counter() - started,
    )
