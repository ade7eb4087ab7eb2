"""Bulk import of relationships: atomic, at one new revision, via COPY.

Input (see docs/storage.md):
- a SpiceDB validation file (YAML): the `relationships` key, one relationship per line
  in the text form `doc:1#viewer@user:ann[caveat:{...}][expiration:...]`, `//` comments;
- NDJSON: one JSON object per line, `{"resource": "doc:1", "relation": "viewer",
  "subject": "user:ann"}` plus optional `"caveat": {"name": ..., "context": {...}}` and
  `"expires_at": "<RFC 3339>"`.

Lines are turned into COPY text rows as they are read (the common NDJSON shape by one
regular expression, without JSON decoding or model objects) and sent to PostgreSQL in
chunks, sorted by key first when they go straight into `relationships` (see bulk.py);
`bulk.load` holds the transaction. A bad line, a duplicate or a lost connection rolls
everything back: all or nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import yaml

from authz_service.errors import PATH_CHARS, InvalidArgument, echo
from authz_service.model import (
    ID_RE,
    RELATION_RE,
    TYPE_RE,
    CaveatRef,
    FrozenContext,
    ObjectRef,
    Relationship,
    SubjectRef,
    parse_object,
    parse_relationship,
    parse_subject,
    validate_relation_name,
)
from authz_service.store.postgres.bulk import NO_STATEMENT_TIMEOUT, copy_text, load
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import translated
from authz_service.store.postgres.sql import relationship_values
from authz_service.unique_yaml import load_unique

__all__ = [
    "Check",
    "Format",
    "ImportResult",
    "detect_format",
    "import_file",
    "import_relationships",
    "read_ndjson",
    "read_relationships",
    "read_validation_file",
]

Format = Literal["yaml", "ndjson"]

Row = tuple[int, str]
"""One relationship: its line, and its columns as COPY text (see `_columns_text`)."""

_CHUNK_ROWS = 8192
"""Rows per COPY chunk, and between two progress reports (one per row would cost as much
as the parsing)."""

_SORTED_BATCHES = 256
"""Chunks read, then sorted together, before any is sent in key order: 2M rows, about
200 MB as Python strings. A larger file goes in sorted runs of that size."""


def _bare(pattern: re.Pattern[str]) -> str:
    return pattern.pattern.removeprefix("^").removesuffix("$")


_WS = r"[ \t]*"  # JSON whitespace inside a line
# The shape nearly every NDJSON line has (what `json.dumps` writes for the three required
# keys, in this order, any spacing): matched, it yields the columns without JSON decoding
# or model objects. The captures use the model's own name and id patterns, none of which
# admits a quote or a backslash, so a capture is exactly the decoded JSON string. Any
# other line (other key order, caveat, expiration, escapes, an error) takes the full path.
_FAST_LINE = re.compile(
    rf'{_WS}\{{{_WS}"resource"{_WS}:{_WS}"(?P<rt>{_bare(TYPE_RE)}):(?P<rid>{_bare(ID_RE)})"'
    rf'{_WS},{_WS}"relation"{_WS}:{_WS}"(?P<rel>{_bare(RELATION_RE)})"'
    rf'{_WS},{_WS}"subject"{_WS}:{_WS}"(?P<st>{_bare(TYPE_RE)}):'
    rf'(?:(?P<sid>{_bare(ID_RE)})(?:#(?:\.\.\.|(?P<srel>{_bare(RELATION_RE)})))?|(?P<any>\*))"'
    rf"{_WS}\}}[ \t\r\n]*"  # JSON whitespace only: `\s` would take what json.loads refuses
)

_NDJSON_KEYS = {"resource", "relation", "subject", "caveat", "expires_at"}


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
    with _utf8(path), path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return "ndjson" if line.lstrip().startswith("{") else "yaml"
    return "ndjson"


@contextmanager
def _utf8(path: Path) -> Iterator[None]:
    """Inside, a read of `path` that meets bytes that are not UTF-8 is InvalidArgument
    naming the first such line. Looked for only then: checking every line as it is read
    would cost every import."""
    try:
        yield
    except UnicodeDecodeError:
        with path.open("rb") as handle:
            for lineno, raw in enumerate(handle, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    where = f"line {lineno}"
                    raise InvalidArgument(
                        f"{where}: not UTF-8 text (byte {exc.start + 1} of the line)", field=where
                    ) from None
        raise InvalidArgument(
            f"`{echo(path, PATH_CHARS)}` is not UTF-8 text", field="file"
        ) from None


def _escaped(text: str) -> str:
    """PyYAML's problem, which may quote the file: escaped as `echo` escapes, not capped
    (PyYAML keeps it short, and it can end in the line number that matters)."""
    return "".join(map(echo, text))


def read_validation_file(path: Path) -> Iterator[tuple[int, Relationship]]:
    """(line number in the file, relationship) for each line of `relationships`."""
    with _utf8(path):
        text = path.read_text(encoding="utf-8")
    try:
        document = load_unique(text)
    except yaml.YAMLError as exc:
        # One line, as the validation files' loader says it: PyYAML's own text spans
        # several, quoting the file's lines.
        where = getattr(exc, "problem_mark", None)
        at = f" at {where.line + 1}:{where.column + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None)
        raise InvalidArgument(
            f"`{echo(path, PATH_CHARS)}` is not valid YAML{at}"
            + (f": {_escaped(problem)}" if problem else ""),
            field="file",
        ) from None
    block = document.get("relationships") if isinstance(document, dict) else None
    if not isinstance(block, str):
        raise InvalidArgument(
            f"`{echo(path, PATH_CHARS)}` has no `relationships` text block", field="file"
        )
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


def _text_rows(path: Path, fmt: Format | None = None, check: Check | None = None) -> Iterator[Row]:
    """Every relationship in `path` with its columns as COPY text; each passed to
    `check` first, if given."""
    checked = _Checked(check)
    if (fmt or detect_format(path)) == "yaml":
        for lineno, parsed in read_validation_file(path):
            checked.whole(parsed, lineno)
            yield lineno, _columns_text(parsed)
        return
    fast = _FAST_LINE.fullmatch
    shapes = checked.shapes if check is not None else None
    with _utf8(path), path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            match = fast(line)
            if match is not None:
                # Unmatched groups read "": exactly one of `sid` and `anyone` is set, and
                # `srel` is "" (NO_RELATION) when absent or `...`.
                rt, rid, relation, st, sid, srel, anyone = match.groups("")
                # Inline: this loop runs a million times per import.
                if shapes is not None and (rt, relation, st, srel, anyone) not in shapes:
                    checked.plain(rt, rid, relation, st, sid or anyone, srel, lineno)
                # No capture can hold a tab, newline or backslash: no escaping needed.
                yield lineno, f"{rt}\t{rid}\t{relation}\t{st}\t{sid}{anyone}\t{srel}\t\\N\t\\N\t\\N"
            elif line.strip():
                slow = _located(_ndjson_relationship, line, f"line {lineno}")
                checked.whole(slow, lineno)
                yield lineno, _columns_text(slow)


Check = Callable[[Relationship, str], None]
"""`check(relationship, field)` raises InvalidArgument if the schema does not allow it."""


class _Checked:
    """`check` for every row. A plain row (no caveat, no expiration) is allowed or not by
    its types, relations and wildcard alone, not its ids: checked once per such shape,
    so that the common line costs a set lookup."""

    def __init__(self, check: Check | None) -> None:
        self._check = check
        # (resource type, relation, subject type, subject relation, "*" or ""): shapes
        # of plain rows that passed; the caller looks a row up here before `plain`.
        self.shapes: set[tuple[str, str, str, str, str]] = set()

    def plain(
        self, rt: str, rid: str, relation: str, st: str, sid: str, srel: str, lineno: int
    ) -> None:
        subject = SubjectRef(st, sid, srel)
        self.whole(Relationship(ObjectRef(rt, rid), relation, subject), lineno)
        self.shapes.add((rt, relation, st, srel, "*" if sid == "*" else ""))

    def whole(self, rel: Relationship, lineno: int) -> None:
        if self._check is None:
            return
        where = f"line {lineno}"
        try:
            self._check(rel, where)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where}: {exc.message}", field=where, value=exc.value) from None


def _columns_text(rel: Relationship) -> str:
    """`relationship_values(rel)` as tab-separated COPY text (NULL is `\\N`)."""
    fields = []
    for value in relationship_values(rel):
        if value is None:
            fields.append("\\N")
        else:
            fields.append(copy_text(value.isoformat() if isinstance(value, datetime) else value))
    return "\t".join(fields)


def read_ndjson(path: Path) -> Iterator[tuple[int, Relationship]]:
    with _utf8(path), path.open(encoding="utf-8") as handle:
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


async def import_relationships(
    db: Database,
    tenant: str,
    relationships: Iterable[tuple[int, Relationship]],
    *,
    on_line: Callable[[int], object] | None = None,
) -> ImportResult:
    """Write `relationships` ((line, relationship) pairs) to `tenant` at one revision."""
    rows = [(line, _columns_text(rel)) for line, rel in relationships]
    return await _import(db, tenant, lambda: rows, on_line)


async def import_file(
    db: Database,
    tenant: str,
    path: Path,
    fmt: Format | None = None,
    *,
    on_line: Callable[[int], object] | None = None,
    check: Check | None = None,
    create_tenant: bool = False,
) -> ImportResult:
    """Write every relationship in `path` to `tenant` at one revision, all or nothing.
    `on_line`, if given, is called with the line number reached every few thousand rows
    and at the end (for a progress bar); `check`, if given, with every relationship
    (the schema's rules: this layer does not know the schema). `create_tenant` registers
    the tenant, if it is not, as part of the same all or nothing."""
    return await _import(
        db, tenant, lambda: _text_rows(path, fmt, check), on_line, create_tenant=create_tenant
    )


async def _import(
    db: Database,
    tenant: str,
    rows: Callable[[], Iterable[Row]],
    on_line: Callable[[int], object] | None,
    *,
    create_tenant: bool = False,
) -> ImportResult:
    started = time.perf_counter()
    result = await load(db, tenant, _Chunks(rows, on_line), create_tenant=create_tenant)
    # A bulk load can change the table's shape more than autovacuum notices in time;
    # fresh statistics keep the planner on the indexes (ANALYZE samples, so it stays
    # quick on big tables).
    with translated():
        async with db.acquire() as conn, conn.transaction():
            await conn.execute(NO_STATEMENT_TIMEOUT)
            await conn.execute("ANALYZE relationships")
    return ImportResult(
        result.revision, result.count, result.replaced, time.perf_counter() - started
    )


@dataclass(frozen=True, slots=True)
class _Chunks:
    """`bulk.Chunks` of `rows`, telling `on_line` the line reached as they are read."""

    rows: Callable[[], Iterable[Row]]
    on_line: Callable[[int], object] | None

    async def numbered(self, end: str) -> AsyncIterator[bytes]:
        for batch in self._batches():
            yield "".join(f"{line}\t{text}{end}" for line, text in batch).encode("utf-8")

    async def in_key_order(self, prefix: str, end: str) -> AsyncIterator[bytes]:
        # A row's text starts with its key columns, and a tab sorts before any character
        # a key may hold: sorting the texts sorts by key, in the byte order of COLLATE "C".
        batches = self._batches()
        between = f"{end}{prefix}"
        while run := [text for batch in islice(batches, _SORTED_BATCHES) for _, text in batch]:
            run.sort()
            for start in range(0, len(run), _CHUNK_ROWS):
                chunk = between.join(run[start : start + _CHUNK_ROWS])
                yield f"{prefix}{chunk}{end}".encode()

    def _batches(self) -> Iterator[list[Row]]:
        rows = iter(self.rows())
        while batch := list(islice(rows, _CHUNK_ROWS)):
            if self.on_line is not None:
                self.on_line(batch[-1][0])
            yield batch
