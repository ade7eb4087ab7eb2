"""Values of the audit calls: decision records and the result of verifying the log."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from authz_client.types import Decision, Explanation

__all__ = [
    "DecisionRecord",
    "LogProblem",
    "LogVerification",
    "ReplaySummary",
    "ReplayedDecision",
]


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One record of the decision log (see docs/api.md for every field).

    `kind` is `check`, `check_bulk_item`, `list_permissions`, `lookup_resources`,
    `lookup_subjects` or `admin`; references are in text form (empty when unset).
    """

    decision_id: str
    time: datetime | None
    tenant: str
    kind: str
    subject: str
    actor: str
    reason: str
    action: str
    resource: str
    context: dict[str, Any] = field(hash=False)
    redacted: tuple[str, ...]
    contextual_relationships_digest: str
    decision: Decision
    token: str
    schema_version: str
    explanation: Explanation | None
    cache_hit: bool
    latency: timedelta | None
    server_version: str
    credential_id: str
    result_count: int
    result_digest: str
    details: dict[str, Any] = field(hash=False)
    sequence: int
    previous_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class LogProblem:
    """The first problem found: `kind` is `chain_broken`, `sequence_broken`, `truncated`,
    `bad_signature`, `malformed` or `unsigned`."""

    kind: str
    sequence: int
    decision_id: str
    description: str


@dataclass(frozen=True, slots=True)
class LogVerification:
    """The result of verifying a tenant's decision log; `verified` only if no problem."""

    verified: bool
    record_count: int
    checkpoint_count: int
    latest_checkpoint_time: datetime | None
    first_problem: LogProblem | None


@dataclass(frozen=True, slots=True)
class ReplayedDecision:
    """One logged check replayed at its revision: `outcome` is `match`, `differs` or
    `cannot_replay` (then `problem` says why and `replayed_decision` is None)."""

    decision_id: str
    time: datetime | None
    subject: str
    action: str
    resource: str
    outcome: str
    recorded_decision: Decision
    recorded_reason: str
    replayed_decision: Decision | None
    replayed_reason: str
    problem: str
    token: str
    schema_version: str


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """The counts of a replay, sent last; `truncated`: more records matched than `limit`."""

    match_count: int
    differ_count: int
    cannot_replay_count: int
    truncated: bool
