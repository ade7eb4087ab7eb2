"""Reading a log directory with one root per server worker, and records that replay
must refuse without touching the database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from authz_service.app import decision_service
from authz_service.cache.lru import DecisionCache
from authz_service.config import Settings
from authz_service.decisionlog import DecisionKind, DecisionLogConfig, DecisionLogWriter
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail
from authz_service.service.log_reader import iter_log, list_log_streams, log_ends
from authz_service.service.reasons import summary, tree_lines
from authz_service.service.replay import Replayer, ReplayStatus
from authz_service.service.schemas import SchemaManager
from authz_service.store.memory import MemoryStore
from tests.decisionlog.helpers import BASE_TIME, make_record, write_records

from .helpers import run_cli


async def _worker_log(log_dir: Path) -> None:
    # Two workers, each with its own chain of tenant acme; their times interleave.
    for n in range(2):
        records = [make_record(2 * i + n) for i in range(4)]
        config = DecisionLogConfig(root=log_dir / f"worker-{n}")
        async with DecisionLogWriter(config) as writer:
            for record in records:
                await writer.append(record)


async def test_every_worker_root_is_verified_and_queried(tmp_path: Path) -> None:
    log_dir = tmp_path / "decisions"
    await _worker_log(log_dir)
    await write_records(DecisionLogConfig(root=tmp_path / "single"), 1, tenants=("worker-7",))

    streams = [s.name for s in list_log_streams(log_dir)]
    assert streams == ["worker-0/acme", "worker-1/acme"]
    found = list(iter_log(log_dir))
    times = [f.stored.entry.record.time for f in found]
    assert times == sorted(times)  # one tenant's streams merged by decision time
    assert [f.stored.entry.seq for f in found] == [0, 0, 1, 1, 2, 2, 3, 3]

    status, out, _ = run_cli("audit", "verify", "--log-dir", str(log_dir), "--no-signatures")
    assert status == 0
    assert out.splitlines()[:2] == [
        "OK      worker-0/acme  4 records, 1 segments, 0 checkpoints, signed up to seq -1",
        "        " + " " * len("worker-0/acme") + "  warning: no public key given: "
        "checkpoint signatures not checked",
    ]
    assert out.splitlines()[-1] == "2 streams verified, 0 failed"
    # A tenant may be called `worker-7`: in a single root it is a stream, not a root.
    assert [s.name for s in list_log_streams(tmp_path / "single")] == ["worker-7"]


async def test_query_filters_across_roots(tmp_path: Path) -> None:
    log_dir = tmp_path / "decisions"
    await _worker_log(log_dir)
    status, out, _ = run_cli(
        "audit", "query", "--log-dir", str(log_dir), "--decision", "DENIED",
        "--since", (BASE_TIME + timedelta(milliseconds=1)).isoformat(),
    )  # fmt: skip
    assert status == 0
    rows = out.splitlines()
    assert rows[0].split()[:3] == ["TIME", "DECISION_ID", "TENANT"]
    assert [r.split()[3] for r in rows[1:]] == ["check", "check"]  # records 3 and 6
    status, out, _ = run_cli("audit", "query", "--log-dir", str(log_dir), "--json", "--limit", "3")
    assert len(out.splitlines()) == 3


async def test_records_replay_must_refuse() -> None:
    store = MemoryStore()
    schemas = SchemaManager(store)
    permissions, _, _ = decision_service(
        Settings(), store, schemas, RevisionResolver(store),
        cache=DecisionCache(1), audit=AuditTrail(None),
    )  # fmt: skip
    replayer = Replayer(permissions, schemas, store)
    timed_out = make_record(
        1, explanation={"error": "DeadlineExceeded", "message": "deadline exceeded"}
    )
    admin = make_record(2, kind=DecisionKind.ADMIN, decision="APPLIED")
    lookup = make_record(3, kind=DecisionKind.LOOKUP_RESOURCES)
    results = [await replayer.replay(r) for r in (timed_out, admin, lookup)]
    assert all(r.status is ReplayStatus.CANNOT_REPLAY for r in results)
    assert "failed with `DeadlineExceeded`, which depends on load" in (results[0].problem or "")
    assert results[1].problem == "`admin` records are not replayable"
    # No schema in the store: not replayable either, and said so.
    missing = await replayer.replay(make_record(4))
    assert missing.status is ReplayStatus.CANNOT_REPLAY
    assert missing.problem == "schema version `s1` does not exist"


def test_one_line_reasons() -> None:
    tree = {
        "kind": "permission", "object": "document:d", "relation": "view", "result": "DENIED",
        "children": [{
            "kind": "exclusion", "object": "document:d", "relation": "viewer - banned",
            "result": "DENIED", "reason": "excluded by `banned`",
            "children": [
                {"kind": "relationship", "object": "document:d", "relation": "viewer",
                 "result": "ALLOWED", "relationship": "document:d#viewer@user:bob"},
                {"kind": "relationship", "object": "document:d", "relation": "banned",
                 "result": "ALLOWED", "relationship": "document:d#banned@user:bob"},
            ],
        }],
    }  # fmt: skip
    assert summary("DENIED", tree) == "excluded by `banned` (document:d#banned@user:bob)"
    assert summary("CONDITIONAL", {"missing_context": ["ip"]}) == "needs context: ip"
    assert summary("DENIED", {}) == "no explanation recorded"
    assert summary("DENIED", {"error": "LimitExceeded", "message": "depth 50 exceeded"}) == (
        "error `LimitExceeded`: depth 50 exceeded"
    )


async def test_a_query_held_to_where_the_log_ended(tmp_path: Path) -> None:
    """`log_ends` is where each stream ends (a torn line being written is not an end);
    `through` holds a query there, and leaves out streams it does not name."""
    log_dir = tmp_path / "decisions"
    await _worker_log(log_dir)
    ends = log_ends(log_dir, "acme")
    assert ends == {"worker-0/acme": 3, "worker-1/acme": 3}
    newest = sorted((log_dir / "worker-0" / "acme").glob("*.jsonl"))[-1]
    with newest.open("ab") as handle:
        handle.write(b'{"seq": 4, "torn')  # a write in progress, as a reader may see it
    assert log_ends(log_dir, "acme") == ends

    held = list(iter_log(log_dir, through={"worker-0/acme": 1, "worker-1/acme": 2}))
    assert [(f.stream.name, f.stored.entry.seq) for f in held] == [
        ("worker-0/acme", 0),
        ("worker-1/acme", 0),
        ("worker-0/acme", 1),
        ("worker-1/acme", 1),
        ("worker-1/acme", 2),
    ]
    only = list(iter_log(log_dir, after={"worker-1/acme": 0}, through={"worker-1/acme": 3}))
    assert [(f.stream.name, f.stored.entry.seq) for f in only] == [
        ("worker-1/acme", 1),
        ("worker-1/acme", 2),
        ("worker-1/acme", 3),
    ]
    assert log_ends(log_dir, "globex") == {}


def test_the_tree_labels_every_expression_step_by_its_expression() -> None:
    """`self` steps hold their expression (`self`) in `relation`, like unions and arrows;
    the text view showed them as `document:x#self`, a relation that does not exist."""
    tree = {
        "kind": "union",
        "object": "document:x",
        "relation": "viewer + self",
        "result": "DENIED",
        "children": [
            {"kind": "self", "object": "document:x", "relation": "self", "result": "DENIED"}
        ],
    }
    lines = tree_lines(tree)
    assert [line.split()[1:] for line in lines] == [
        ["union", "viewer", "+", "self"],
        ["self", "self"],
    ]
