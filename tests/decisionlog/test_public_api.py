"""Pins the public surface of `authz_service.decisionlog`."""

from __future__ import annotations

from authz_service import decisionlog


def test_public_names() -> None:
    assert sorted(decisionlog.__all__) == [
        "ChainHead", "Checkpoint", "Decision", "DecisionKind", "DecisionLogConfig",
        "DecisionLogMirror", "DecisionLogWriter", "DecisionRecord", "EncodedCheck", "Finding",
        "GENESIS_HASH", "LogEntry", "LogMode", "MIGRATION_SQL", "OverflowPolicy", "PostgresSink",
        "Problem", "REDACTED_MARKER", "RecordFilter", "StoredEntry", "VerifyReport",
        "WriterStats", "canonical_json", "chain_hash", "encode_check", "find_decision",
        "format_explain", "format_jsonl", "format_reports", "format_table", "generate_keypair",
        "iter_entries", "key_id", "load_private_key", "load_public_key", "new_decision_id",
        "new_decision_ids", "verify_all", "verify_stream",
    ]  # fmt: skip
    for name in decisionlog.__all__:
        assert hasattr(decisionlog, name), name
