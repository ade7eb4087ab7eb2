"""Bulk import: validation YAML and NDJSON, all or nothing at one revision, via COPY."""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authz_service.cli import import_, migrate
from authz_service.errors import InvalidArgument, NotFound
from authz_service.model import RelationshipFilter, parse_relationship
from authz_service.schema import compile_schema
from authz_service.store.postgres import PostgresStore, connect, importer
from authz_service.store.postgres.importer import (
    import_file,
    import_relationships,
    read_ndjson,
    read_relationships,
    read_validation_file,
)
from tests.pg import run_aside

EVERYTHING = RelationshipFilter()

VALIDATION_FILE = """\
schema: |-
  definition user {}
  definition doc {
    relation viewer: user | group#member
  }
relationships: |-
  // people
  doc:one#viewer@user:ann

  doc:one#viewer@group:eng#member
  doc:two#viewer@user:bob[on_vpn:{"cidr":"10.0.0.0/8"}]
  doc:two#viewer@user:cat[expiration:2030-01-01T00:00:00Z]
assertions:
  assertTrue:
    - doc:one#viewer@user:ann
"""


def write_ndjson(path: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w") as handle:
        for i in range(count):
            record: dict[str, object] = {
                "resource": f"doc:d{i // 5}",
                "relation": rng.choice(["viewer", "editor", "owner"]),
                "subject": f"user:u{i}",
            }
            if i % 10 == 0:
                record["caveat"] = {"name": "on_vpn", "context": {"n": i}}
            if i % 7 == 0:
                record["expires_at"] = "2030-01-01T00:00:00Z"
            handle.write(json.dumps(record) + "\n")


async def test_a_validation_file_imports_at_one_revision(
    pg_store: PostgresStore, tmp_path: Path
) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(VALIDATION_FILE)
    assert [line for line, _ in read_validation_file(path)] == [8, 10, 11, 12]
    await pg_store.write("acme", [])
    result = await import_relationships(pg_store.db, "acme", read_relationships(path))
    assert (result.revision, result.count, result.replaced) == (2, 4, 0)
    stored = [str(r) for r in await pg_store.read("acme", 2, EVERYTHING)]
    assert stored == [
        "doc:one#viewer@group:eng#member",
        "doc:one#viewer@user:ann",
        'doc:two#viewer@user:bob[on_vpn:{"cidr":"10.0.0.0/8"}]',
        "doc:two#viewer@user:cat[expiration:2030-01-01T00:00:00Z]",
    ]
    assert await pg_store.read("acme", 1, EVERYTHING) == []


async def test_a_hundred_thousand_ndjson_rows_import_atomically(
    pg_store: PostgresStore, tmp_path: Path
) -> None:
    path = tmp_path / "big.ndjson"
    write_ndjson(path, 100_000)
    started = time.perf_counter()
    result = await import_relationships(pg_store.db, "acme", read_ndjson(path))
    elapsed = time.perf_counter() - started
    print(f"\nimported 100k relationships in {elapsed:.2f}s")
    assert (result.revision, result.count) == (1, 100_000)
    sample = await pg_store.read("acme", 1, RelationshipFilter("doc", ("d0",)))
    assert len(sample) == 5
    assert sample[0].caveat is not None or any(r.caveat for r in sample)
    # importing again replaces every row at one new revision (TOUCH semantics)
    again = await import_relationships(pg_store.db, "acme", read_ndjson(path))
    assert (again.revision, again.count, again.replaced) == (2, 100_000, 100_000)
    assert len(await pg_store.changes("acme", 1, limit=10)) == 100_000


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"resource": "doc:x", "relation": "viewer"}', "missing `subject`"),
        ('{"resource": "doc:x", "relation": "viewer", "subject": "user:a", "x": 1}', "unknown"),
        ('{"resource": "doc", "relation": "viewer", "subject": "user:a"}', "type:id"),
        ('{"resource": "doc:x", "relation": "viewer", "subject": "user:a", "expires_at": "soon"}', "RFC 3339"),
        ("not json", "not valid JSON"),
    ],
)  # fmt: skip
async def test_one_bad_line_writes_nothing(
    pg_store: PostgresStore, tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "bad.ndjson"
    write_ndjson(path, 5000)
    with path.open("a") as handle:
        handle.write(line + "\n")
    with pytest.raises(InvalidArgument, match=message) as caught:
        await import_relationships(pg_store.db, "acme", read_ndjson(path))
    assert "line 5001" in caught.value.message
    assert await pg_store.head_revision("acme") == 0
    assert await pg_store.pool.fetchval("SELECT count(*) FROM relationships") == 0


async def test_the_fast_reader_refuses_what_json_refuses(
    pg_store: PostgresStore, tmp_path: Path
) -> None:
    # A form feed after the object is not JSON whitespace: json.loads reports extra
    # data, so the one-regex reader must not take the line either.
    path = tmp_path / "feed.ndjson"
    write_ndjson(path, 10)
    with path.open("a") as handle:
        handle.write('{"resource": "doc:x", "relation": "viewer", "subject": "user:a"}\f\n')
    with pytest.raises(InvalidArgument, match="line 11: not valid JSON"):
        await import_file(pg_store.db, "acme", path)
    assert await pg_store.head_revision("acme") == 0


_ROW = b'{"resource": "doc:a", "relation": "viewer", "subject": "user:a"}\n'


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("rows.ndjson", _ROW * 3 + b'{"resource": "doc:b", "relation": "viewer", "subject": "user:\xe9"}\n', 4),
        ("rows.yaml", b"relationships: |-\n  doc:a#viewer@user:a\n  doc:b#viewer@user:\xe9\n", 3),
        ("rows", b"\xff\xfe{}\n", 1),
    ],
    ids=["ndjson", "yaml", "undetected"],
)  # fmt: skip
async def test_a_line_that_is_not_utf8_is_named_and_writes_nothing(
    pg_store: PostgresStore, tmp_path: Path, name: str, content: bytes, line: int
) -> None:
    # It raised UnicodeDecodeError: a traceback and exit status 1 from `authz import`.
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidArgument, match="not UTF-8") as caught:
        await import_file(pg_store.db, "acme", path)
    assert caught.value.message.startswith(f"line {line}: ")
    assert await pg_store.head_revision("acme") == 0


async def test_a_relationship_twice_in_one_file_writes_nothing(
    pg_store: PostgresStore, tmp_path: Path
) -> None:
    path = tmp_path / "twice.ndjson"
    write_ndjson(path, 50)
    with path.open("a") as handle:
        handle.write(json.dumps({"resource": "doc:d0", "relation": "owner", "subject": "user:u3"}))
    first = next(rel for _, rel in read_ndjson(path) if str(rel).endswith("@user:u3"))
    # The duplicate written above must collide with the seeded line for u3.
    assert first == parse_relationship("doc:d0#owner@user:u3")
    with pytest.raises(InvalidArgument, match="lines 4 and 51"):
        await import_relationships(pg_store.db, "acme", read_ndjson(path))
    assert await pg_store.head_revision("acme") == 0


def test_the_cli_migrates_and_imports(pg_dsn: str, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="authz")
    sub = parser.add_subparsers(required=True)
    migrate.register(sub)
    import_.register(sub)
    args = parser.parse_args(["migrate", "--database-url", pg_dsn])
    assert args.handler(args) == 0
    path = tmp_path / "world.yaml"
    path.write_text(VALIDATION_FILE)
    tenant = f"cli-{time.time_ns()}"
    argv = ["import", str(path), "--tenant", tenant, "--database-url", pg_dsn, "--no-progress"]
    args = parser.parse_args(argv)
    # An unknown tenant is most likely a typo: refused, unless asked to create it.
    with pytest.raises(NotFound, match=f"tenant `{tenant}` does not exist"):
        args.handler(args)
    args = parser.parse_args([*argv, "--create-tenant"])
    assert args.handler(args) == 0

    async def count() -> int:
        store = await connect(pg_dsn, min_size=1, max_size=1)
        try:
            return len(await store.read(tenant, 1, EVERYTHING))
        finally:
            await store.close()

    assert run_aside(count()) == 4


INDEXES_SQL = (
    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'relationships' "
    "ORDER BY indexname"
)


async def _live(store: PostgresStore, tenant: str) -> int:
    sql = "SELECT count(*) FROM relationships WHERE tenant = $1 AND deleted_rev IS NULL"
    return int(await store.pool.fetchval(sql, tenant))


async def test_a_first_import_into_an_empty_table_keeps_every_index(
    pg_store: PostgresStore, tmp_path: Path
) -> None:
    # The indexes are dropped for the load and built again in the same transaction.
    before = await pg_store.pool.fetch(INDEXES_SQL)
    path = tmp_path / "first.ndjson"
    write_ndjson(path, 20_000)
    result = await import_file(pg_store.db, "acme", path)
    assert (result.revision, result.count, result.replaced) == (1, 20_000, 0)
    assert await pg_store.pool.fetch(INDEXES_SQL) == before
    assert await _live(pg_store, "acme") == 20_000
    rows = await pg_store.read("acme", 1, RelationshipFilter("doc", ("d7",)))
    assert sorted(str(r.subject) for r in rows) == [f"user:u{i}" for i in range(35, 40)]


async def test_a_failed_first_import_leaves_the_indexes_and_no_rows(
    pg_store: PostgresStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sorted runs of one chunk: rows are sent before the bad line is read.
    monkeypatch.setattr(importer, "_SORTED_BATCHES", 1)
    before = await pg_store.pool.fetch(INDEXES_SQL)
    path = tmp_path / "bad.ndjson"
    write_ndjson(path, 30_000)
    with path.open("a") as handle:
        handle.write('{"resource": "doc:x", "relation": "viewer", "subject": "user"}\n')
    with pytest.raises(InvalidArgument, match="line 30001"):
        await import_file(pg_store.db, "acme", path)
    assert await pg_store.pool.fetch(INDEXES_SQL) == before
    assert await pg_store.pool.fetchval("SELECT count(*) FROM relationships") == 0
    assert await pg_store.head_revision("acme") == 0


async def test_a_new_tenant_beside_another_gets_exactly_its_rows(
    pg_store: PostgresStore, tmp_path: Path
) -> None:
    path = tmp_path / "rows.ndjson"
    write_ndjson(path, 3_000)
    await import_file(pg_store.db, "globex", path)
    with path.open("a") as handle:  # every form the fast path and the full path read
        handle.write('{"relation": "viewer", "resource": "doc:k", "subject": "user:z"}\n')
        handle.write('{"resource":"doc:w","relation":"viewer","subject":"user:*"}\n')
        handle.write('{"resource": "doc:s", "relation": "viewer", "subject": "team:t#member"}\n')
        handle.write('{"resource": "doc:e", "relation": "viewer", "subject": "team:t#..."}\n')
        handle.write("\n")
    result = await import_file(pg_store.db, "acme", path)
    assert (result.revision, result.count, result.replaced) == (1, 3_004, 0)
    assert await _live(pg_store, "acme") == 3_004
    assert await _live(pg_store, "globex") == 3_000
    expected = [parsed for _, parsed in read_ndjson(path)]
    stored = await pg_store.read("acme", 1, EVERYTHING)
    assert sorted(map(str, stored)) == sorted(map(str, expected))
    special = {str(r) for r in stored if r.resource.id in ("k", "w", "s", "e")}
    assert special == {
        "doc:k#viewer@user:z",
        "doc:w#viewer@user:*",
        "doc:s#viewer@team:t#member",
        "doc:e#viewer@team:t",
    }


async def _sent(chunks: AsyncIterator[bytes]) -> list[list[str]]:
    """The COPY rows of `chunks`, as lists of fields."""
    text = b"".join([chunk async for chunk in chunks]).decode()
    return [line.split("\t") for line in text.splitlines()]


@pytest.mark.parametrize("batches_per_run", [importer._SORTED_BATCHES, 1])
async def test_a_first_import_sends_its_rows_in_key_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batches_per_run: int
) -> None:
    # Rows in the forward index's order let PostgreSQL's sort skip most of its work when
    # the indexes are built. The file is not in that order (doc:d1's subjects u5..u9 with
    # random relations); a file larger than one run is sent in sorted runs.
    monkeypatch.setattr(importer, "_SORTED_BATCHES", batches_per_run)
    path = tmp_path / "rows.ndjson"
    write_ndjson(path, 20_000)
    progress: list[int] = []
    chunks = importer._Chunks(lambda: importer._text_rows(path), progress.append)
    sent = await _sent(chunks.in_key_order("acme\t", "\t1\n"))
    assert {(row[0], row[-1]) for row in sent} == {("acme", "1")}
    keys = [row[1:7] for row in sent]
    run = batches_per_run * importer._CHUNK_ROWS
    runs = [keys[start : start + run] for start in range(0, len(keys), run)]
    assert all(part == sorted(part) for part in runs)
    assert (len(runs) > 1) == (batches_per_run == 1)
    assert progress == sorted(progress)
    assert progress[-1] == 20_000
    in_file_order = await _sent(chunks.numbered("\n"))  # begins with the line number
    assert sorted(keys) == sorted(row[1:7] for row in in_file_order)
    assert keys != [row[1:7] for row in in_file_order]


async def test_a_file_larger_than_one_sorted_run_imports_every_row(
    pg_store: PostgresStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "_SORTED_BATCHES", 1)  # runs of one chunk
    path = tmp_path / "rows.ndjson"
    write_ndjson(path, 20_000)
    result = await import_file(pg_store.db, "acme", path)
    assert (result.revision, result.count, result.replaced) == (1, 20_000, 0)
    expected = sorted(str(rel) for _, rel in read_ndjson(path))
    assert sorted(map(str, await pg_store.read("acme", 1, EVERYTHING))) == expected


SCHEMA = """
caveat small(n int) { n < 3 }
definition user {}
definition group { relation member: user }
definition doc {
    relation viewer: user | group#member | user with small
    permission view = viewer
}
"""


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        ('{"resource": "doc:a", "relation": "viewer", "subject": "user:a"}\n'
         '{"resource": "doc:b", "relation": "owner", "subject": "user:b"}', "line 2: "),
        ('{"resource": "doc:a", "relation": "viewer", "subject": "user:*"}', "line 1: "),
        ('{"resource": "doc:a", "relation": "viewer", "subject": "group:g"}', "line 1: "),
        ('{"resource": "doc:a", "relation": "viewer", "subject": "user:a", '
         '"caveat": {"name": "small", "context": {"n": "x"}}}', "line 1: "),
    ],
    ids=["unknown-relation", "wildcard", "subject-relation", "context-type"],
)  # fmt: skip
def test_the_cli_refuses_rows_the_schema_does_not_allow(
    pg_dsn: str, tmp_path: Path, lines: str, says: str
) -> None:
    # The import wrote whatever parsed: relations, subject types and caveat contexts the
    # schema does not allow, which WriteRelationships refuses.
    parser = argparse.ArgumentParser(prog="authz")
    import_.register(parser.add_subparsers(required=True))

    async def write_schema() -> None:
        store = await connect(pg_dsn, min_size=1, max_size=1)
        try:
            await store.write_schema(compile_schema(SCHEMA).version, SCHEMA)
        finally:
            await store.close()

    run_aside(write_schema())
    path = tmp_path / "rows.ndjson"
    path.write_text(lines + "\n")
    tenant = f"cli-{time.time_ns()}"
    argv = ["import", str(path), "--tenant", tenant, "--database-url", pg_dsn, "--no-progress"]
    args = parser.parse_args([*argv, "--create-tenant"])
    with pytest.raises(InvalidArgument) as refused:
        args.handler(args)
    assert refused.value.message.startswith(says), refused.value.message
    good = '{"resource": "doc:a", "relation": "viewer", "subject": "group:g#member"}\n'
    path.write_text(good + '{"resource": "doc:b", "relation": "viewer", "subject": "user:b"}\n')
    # --create-tenant again: the refused import did not leave the tenant behind.
    args = parser.parse_args([*argv, "--create-tenant"])
    assert args.handler(args) == 0


def test_a_key_given_twice_in_a_validation_file_is_refused(tmp_path: Path) -> None:
    # YAML keeps the last `relationships`: the first block would not be imported.
    path = tmp_path / "twice.yaml"
    path.write_text("relationships: |-\n  doc:a#viewer@user:a\nrelationships: ''\n")
    with pytest.raises(InvalidArgument, match="duplicate key `relationships` on line 3"):
        list(read_validation_file(path))


def _cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="authz")
    import_.register(parser.add_subparsers(required=True))
    return parser


def test_invalid_yaml_is_one_line_naming_where(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyYAML's own message is six lines, quoting the file.
    monkeypatch.chdir(tmp_path)
    path = Path("broken\x1b[31m.yaml")
    path.write_text("relationships: [\n  unclosed\n")
    tenant = f"cli-{time.time_ns()}"
    argv = ["import", str(path), "--tenant", tenant, "--database-url", pg_dsn, "--no-progress"]
    args = _cli().parse_args([*argv, "--create-tenant"])
    with pytest.raises(InvalidArgument) as refused:
        args.handler(args)
    message = refused.value.message
    assert "\n" not in message
    assert "\x1b" not in message
    assert "broken\\x1b[31m.yaml" in message
    assert re.search(r"is not valid YAML at 3:1: expected ',' or ']'", message), message


@pytest.mark.parametrize(
    "text",
    [
        '{"resource": "doc:a", "relation": "viewer", "subject": "user:x"}\nnot json\n',
        '{"resource": "doc:a", "relation": "viewer", "subject": "user:x"}\n' * 2,
        "relationships: |-\n  doc:a#viewer@user:x\n  doc:a#\n",
    ],
    ids=["bad-line", "duplicate", "bad-yaml-line"],
)
def test_a_failed_import_does_not_create_the_tenant(pg_dsn: str, tmp_path: Path, text: str) -> None:
    # docs/storage.md: a bad line rolls everything back, the tenant included; the tenant
    # --create-tenant registered stayed behind.
    path = tmp_path / ("rows.yaml" if text.startswith("relationships") else "rows.ndjson")
    path.write_text(text)
    tenant = f"cli-{time.time_ns()}"
    argv = ["import", str(path), "--tenant", tenant, "--database-url", pg_dsn, "--no-progress"]
    args = _cli().parse_args([*argv, "--create-tenant"])
    with pytest.raises(InvalidArgument):
        args.handler(args)

    async def registered() -> object:
        store = await connect(pg_dsn, min_size=1, max_size=1)
        try:
            return await store.tenants.get(tenant)
        finally:
            await store.close()

    assert run_aside(registered()) is None
    # The same file, fixed, then creates it.
    path.write_text(
        text.splitlines(keepends=True)[0] + ("" if "|-" not in text else "  doc:a#viewer@user:x\n")
    )
    assert args.handler(args) == 0
    assert run_aside(registered()) is not None
