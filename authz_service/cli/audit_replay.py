"""`authz audit explain` and `authz audit replay`: the audit tools that also need the
service's database (to re-evaluate decisions at their recorded revisions)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from authz_service.cache.lru import DecisionCache
from authz_service.cli.audit_args import (
    add_filters,
    add_log_dir,
    at_least,
    log_dir,
    record_filter,
)
from authz_service.config import Settings, load_settings
from authz_service.decisionlog import DecisionRecord
from authz_service.decisionlog.record import format_time
from authz_service.errors import FailedPrecondition, InvalidArgument
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail
from authz_service.service.log_reader import Found, aiter_log, find_in_log, iter_log
from authz_service.service.reasons import error_of, has_tree, summary, tree_lines
from authz_service.service.replay import REPLAYABLE_KINDS, Replayer, ReplayResult, ReplayStatus
from authz_service.service.schemas import SchemaManager

__all__ = ["register"]


def register(audit: Any) -> None:
    explain = audit.add_parser("explain", help="print one decision and its granting path")
    explain.add_argument("decision_id")
    explain.add_argument("--tenant", help="look only in this tenant's streams")
    _common(explain)
    explain.set_defaults(handler=lambda args: asyncio.run(_explain(args)))

    replay = audit.add_parser(
        "replay", help="re-evaluate logged checks at their revisions and report differences"
    )
    add_filters(replay)
    _common(replay)
    replay.add_argument(
        "--schema-version",
        help="replay against this schema version instead of the recorded one "
        "(what would a schema change have changed?)",
    )
    replay.add_argument("--concurrency", type=at_least(1), default=16, help="evaluations in flight")
    replay.set_defaults(handler=lambda args: asyncio.run(_replay(args)))


def _common(parser: argparse.ArgumentParser) -> None:
    add_log_dir(parser)
    parser.add_argument(
        "--database-url", help="the service's PostgreSQL database (AUTHZ_DATABASE_URL)"
    )


def _settings(args: argparse.Namespace) -> Settings:
    """The server's settings as this environment gives them: the evaluation limits
    (AUTHZ_MAX_DEPTH, ...) included, which replay must share with the server."""
    return load_settings({"database_url": args.database_url})


def _database_url(args: argparse.Namespace) -> str | None:
    url = _settings(args).database_url
    return url if url and url != "memory://" else None


@asynccontextmanager
async def _replayer(
    args: argparse.Namespace, schema_version: str | None = None
) -> AsyncIterator[Replayer]:
    settings = _settings(args)
    url = _database_url(args)
    if url is None:
        raise FailedPrecondition(
            "replay needs the service's PostgreSQL database: "
            "pass --database-url or set AUTHZ_DATABASE_URL"
        )
    from authz_service.app import decision_service
    from authz_service.store import postgres

    # Only a pool: no migrations, no collector, no listener. The auditor reads.
    store = await postgres.connect(
        url,
        min_size=1,
        max_size=max(2, min(getattr(args, "concurrency", 4), 32)),
        retention=timedelta(hours=settings.retention_hours),
    )
    try:
        schemas = SchemaManager(store)
        permissions, _, _ = decision_service(
            settings,
            store,
            schemas,
            RevisionResolver(store),
            cache=DecisionCache(1),  # evaluate() never uses it
            audit=AuditTrail(None),  # replays are not decisions: nothing is logged
        )
        yield Replayer(permissions, schemas, store, schema_version=schema_version)
    finally:
        await store.close()


def _question(record: DecisionRecord) -> str:
    actor = f" by actor {record.actor}" if record.actor else ""
    return f"{record.subject} {record.action} {record.resource}{actor}"


# The settings that bound an evaluation (`app.decision_service`). A record keeps what they
# decided, not them: under other limits the same question can get another answer.
_LIMITS = ("max_depth", "max_fanout", "max_subproblems", "max_caveat_cost")
_LIMIT_ERROR = "LimitExceeded"


def _limits_note(settings: Settings) -> str:
    limits = ", ".join(f"AUTHZ_{name.upper()}={getattr(settings, name)}" for name in _LIMITS)
    return (
        "    note: an evaluation limit decided one of these answers, and a record does not "
        f"keep the server's limits; this replay ran with {limits}: set the server's"
    )


def format_result(result: ReplayResult, limits_note: str) -> str:
    """A difference, or why a decision could not be replayed; `limits_note` follows a
    difference a limit error is part of."""
    record = result.record
    head = (
        f"{record.decision_id}  tenant {record.tenant}: {_question(record)} "
        f"at revision {record.revision}, {format_time(record.time)}"
    )
    if result.status is ReplayStatus.CANNOT_REPLAY:
        return f"CANNOT REPLAY {head}: {result.problem}"
    assert result.replayed is not None  # replayed unless CANNOT_REPLAY
    schema = f"schema {record.schema_version}"
    if result.schema_version != record.schema_version:
        schema += f", replayed with schema {result.schema_version}"
    lines = [
        f"DIFFERS       {head}, {schema}",
        f"    recorded: {result.original}",
        f"    replayed: {result.replayed}",
    ]
    if _LIMIT_ERROR in (result.original.error, result.replayed.error):
        lines.append(limits_note)
    return "\n".join(lines)


async def _replay(args: argparse.Namespace) -> int:
    root, where = log_dir(args), record_filter(args)
    if where.kind is not None and where.kind not in REPLAYABLE_KINDS:
        raise InvalidArgument("only `check` and `check_bulk_item` decisions can be replayed")

    def selected(found: Found) -> bool:
        return found.stored.entry.record.kind in REPLAYABLE_KINDS

    total = await asyncio.to_thread(lambda: sum(1 for f in iter_log(root, where) if selected(f)))

    async def records() -> AsyncIterator[DecisionRecord]:
        async for found in aiter_log(root, where):
            if selected(found):
                yield found.stored.entry.record

    counts: Counter[ReplayStatus] = Counter()
    note = _limits_note(_settings(args))
    async with _replayer(args, args.schema_version) as replayer:
        await replayer.prepare()
        with tqdm(total=total, file=sys.stderr, unit="decision", desc="replay") as bar:
            async for result in replayer.replay_many(records(), concurrency=args.concurrency):
                counts[result.status] += 1
                bar.update()
                if result.status is not ReplayStatus.MATCH:
                    tqdm.write(format_result(result, note), file=sys.stdout)
    differ, failed = counts[ReplayStatus.DIFFERS], counts[ReplayStatus.CANNOT_REPLAY]
    print(
        f"{counts[ReplayStatus.MATCH] + differ} replayed, {differ} differ, "
        f"{failed} could not be replayed"
    )
    return 1 if differ or failed else 0


def describe(found: Found, root: Path) -> str:
    """Every field of the record, then where it is stored and its one-line reason."""
    entry = found.stored.entry
    fields = entry.record.to_dict()
    shown = {k: v for k, v in fields.items() if k not in ("format", "explanation")}
    width = max(len(k) for k in shown)
    lines = [f"{k.ljust(width)}  {_plain(v)}" for k, v in shown.items()]
    try:
        where = found.stored.segment.relative_to(root)
    except ValueError:
        where = found.stored.segment
    lines.append(f"{'stored at'.ljust(width)}  {where}:{found.stored.line} (seq {entry.seq})")
    lines.append(f"{'hash'.ljust(width)}  {entry.hash}")
    why = summary(fields["decision"], entry.record.explanation)
    lines.append(f"{'why'.ljust(width)}  {why}")
    return "\n".join(lines)


def _plain(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list | bool):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


async def _explain(args: argparse.Namespace) -> int:
    root = log_dir(args)
    found = await asyncio.to_thread(find_in_log, root, args.decision_id, tenant=args.tenant)
    record = found.stored.entry.record
    print(describe(found, root))
    if has_tree(record.explanation):
        print("explanation (recorded):")
        print("\n".join(tree_lines(record.explanation, "  ")))
        return 0
    if record.kind not in REPLAYABLE_KINDS or error_of(record.explanation):
        return 0  # nothing the engine could explain: a lookup, an admin change, an error
    if _database_url(args) is None:
        print(
            "explanation: not recorded (the check did not ask for one); pass --database-url "
            "to re-derive it by replay"
        )
        return 1
    async with _replayer(args) as replayer:
        result = await replayer.replay(record, explain=True)
    if result.replayed is None:
        print(f"explanation: not recorded, and cannot be re-derived by replay: {result.problem}")
        return 1
    print(
        f"explanation (re-derived by replay at revision {record.revision}, schema "
        f"{record.schema_version}, time {format_time(record.time)}; not part of the record):"
    )
    print("\n".join(tree_lines(result.replayed.explanation, "  ")))
    if result.status is ReplayStatus.DIFFERS:
        print(
            f"warning: replay now answers {result.replayed.decision}, not the recorded "
            f"{record.decision}: the tree explains the replayed answer"
        )
        return 1
    return 0
