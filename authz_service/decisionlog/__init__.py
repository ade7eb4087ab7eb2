"""The tamper-evident decision log: records, hash chain, sinks, verification, query.

    record = DecisionRecord(...)                 # one decision or admin change
    async with DecisionLogWriter(config) as log: # file sink, durable or buffered
        entry = await log.append(record)         # chained (seq, prev_hash, hash)
    verify_all(config.root, load_public_key(path))
    iter_entries(config.root, RecordFilter(subject="user:alice"))

See docs/decision-log.md for the format, the chain, checkpoints and guarantees.
"""

from authz_service.decisionlog.chain import GENESIS_HASH, ChainHead, LogEntry, chain_hash
from authz_service.decisionlog.check_record import EncodedCheck, encode_check
from authz_service.decisionlog.checkpoint import (
    Checkpoint,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
)
from authz_service.decisionlog.config import DecisionLogConfig, LogMode, OverflowPolicy
from authz_service.decisionlog.mirror import DecisionLogMirror
from authz_service.decisionlog.query import (
    RecordFilter,
    StoredEntry,
    find_decision,
    format_explain,
    format_jsonl,
    format_table,
    iter_entries,
)
from authz_service.decisionlog.record import (
    Decision,
    DecisionKind,
    DecisionRecord,
    canonical_json,
    new_decision_id,
    new_decision_ids,
)
from authz_service.decisionlog.redact import REDACTED_MARKER
from authz_service.decisionlog.sink_postgres import MIGRATION_SQL, PostgresSink
from authz_service.decisionlog.verify import verify_all, verify_stream
from authz_service.decisionlog.verify_report import Finding, Problem, VerifyReport, format_reports
from authz_service.decisionlog.writer import DecisionLogWriter, WriterStats

__all__ = [
    "GENESIS_HASH",
    "MIGRATION_SQL",
    "REDACTED_MARKER",
    "ChainHead",
    "Checkpoint",
    "Decision",
    "DecisionKind",
    "DecisionLogConfig",
    "DecisionLogMirror",
    "DecisionLogWriter",
    "DecisionRecord",
    "EncodedCheck",
    "Finding",
    "LogEntry",
    "LogMode",
    "OverflowPolicy",
    "PostgresSink",
    "Problem",
    "RecordFilter",
    "StoredEntry",
    "VerifyReport",
    "WriterStats",
    "canonical_json",
    "chain_hash",
    "encode_check",
    "find_decision",
    "format_explain",
    "format_jsonl",
    "format_reports",
    "format_table",
    "generate_keypair",
    "iter_entries",
    "key_id",
    "load_private_key",
    "load_public_key",
    "new_decision_id",
    "new_decision_ids",
    "verify_all",
    "verify_stream",
]
