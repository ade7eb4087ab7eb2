"""Replaying logged decisions: the same question, asked again of the data and the model
it was first asked of.

A check or check_bulk_item record is re-evaluated with `PermissionService.evaluate` (the
function live checks use, so every rule a live check applies also applies here) on a
snapshot made of the record itself: its tenant, its revision (at_exact_snapshot), its
schema version (or an override, to see what a schema change would have changed), its
time as `now` (relationship expiration), its context, subject, action, resource and
actor. Nothing is cached and nothing is logged.

A record is reported as not replayable, never as a match, when its inputs are
incomplete (redacted context, contextual relationships of which only a digest was
kept), when its revision is no longer readable (outside the retention window, history
collected), or when the original evaluation failed for a reason outside the data (a
deadline or an outage). The revision is checked after the evaluation: garbage
collection only removes history of revisions that have left the window, so a revision
still readable afterwards was intact throughout.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from authz_service.decisionlog import DecisionKind, DecisionRecord
from authz_service.engine import CheckItem, CheckResult, Snapshot
from authz_service.errors import (
    AuthzError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from authz_service.model import FrozenContext, SubjectRef, parse_object, parse_subject
from authz_service.service.permissions import PermissionService
from authz_service.service.reasons import error_of, has_tree, node_to_json, summary
from authz_service.service.schemas import SchemaManager
from authz_service.store.protocol import RevisionSource

__all__ = ["REPLAYABLE_KINDS", "Answer", "ReplayResult", "ReplayStatus", "Replayer"]

REPLAYABLE_KINDS = frozenset({DecisionKind.CHECK, DecisionKind.CHECK_BULK_ITEM})

# Failures that tell about the moment (load, an outage), not about the data.
_TRANSIENT: tuple[type[AuthzError], ...] = (DeadlineExceeded, Unavailable)
_TRANSIENT_NAMES = frozenset(cls.__name__ for cls in _TRANSIENT)


class ReplayStatus(StrEnum):
    MATCH = "match"
    DIFFERS = "differs"
    CANNOT_REPLAY = "cannot_replay"


@dataclass(frozen=True, slots=True)
class Answer:
    """A decision as recorded or as replayed. `error` names the error class when the
    evaluation failed (the caller got an error status; the log says DENIED)."""

    decision: str
    error: str | None
    reason: str  # one line: the granting path, or why not
    explanation: Mapping[str, Any]  # the recorded JSON form

    @property
    def verdict(self) -> tuple[str, str | None]:
        return self.decision, self.error

    def __str__(self) -> str:
        return f"{self.decision}, {self.reason}"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    record: DecisionRecord
    status: ReplayStatus
    original: Answer
    schema_version: str  # the version it was (or would have been) replayed against
    replayed: Answer | None = None
    problem: str | None = None  # why it could not be replayed


def recorded_answer(record: DecisionRecord) -> Answer:
    explanation = record.explanation
    decision = str(record.decision)
    return Answer(decision, error_of(explanation), summary(decision, explanation), explanation)


def _answer(result: CheckResult) -> Answer:
    explanation: dict[str, Any] = {}
    if result.explanation is not None:
        explanation = node_to_json(result.explanation)
    elif result.missing_context:
        explanation = {"missing_context": list(result.missing_context)}
    decision = result.decision.value
    return Answer(decision, None, summary(decision, explanation), explanation)


def _failed(exc: AuthzError) -> Answer:
    explanation = {"error": type(exc).__name__, "message": exc.message}
    return Answer("DENIED", type(exc).__name__, summary("DENIED", explanation), explanation)


@dataclass(frozen=True, slots=True)
class _Who:
    """Who else a recorded decision was about: the impersonating actor, or the
    delegation chain (`details.agents`; its last agent is also the record's `actor`)."""

    actor: SubjectRef | None = None
    agents: tuple[SubjectRef, ...] = ()


def _question(record: DecisionRecord) -> tuple[CheckItem, _Who]:
    context = record.context
    item = CheckItem(
        resource=parse_object(record.resource),
        permission=record.action,
        subject=parse_subject(record.subject),
        context=context if isinstance(context, FrozenContext) else FrozenContext(context),
    )
    chain = record.details.get("agents")
    if isinstance(chain, list) and chain:
        agents = tuple(parse_subject(str(a), "agents") for a in chain)
        return item, _Who(agents=agents)
    actor = parse_subject(record.actor, "actor") if record.actor else None
    return item, _Who(actor=actor)


def _unreplayable(record: DecisionRecord) -> str | None:
    if record.kind not in REPLAYABLE_KINDS:
        return f"`{record.kind}` records are not replayable"
    if record.redacted:
        return f"context redacted ({', '.join(record.redacted)})"
    if record.contextual_relationships_digest is not None:
        return "the call's contextual relationships were not recorded, only their digest"
    error = error_of(record.explanation)
    if error in _TRANSIENT_NAMES:
        return f"the original evaluation failed with `{error}`, which depends on load, not data"
    return None


class Replayer:
    """Re-evaluates logged decisions with `permissions` (composed as a server composes
    it: `app.decision_service`). `schema_version` replays every record against that
    version instead of the one it recorded."""

    def __init__(
        self,
        permissions: PermissionService,
        schemas: SchemaManager,
        revisions: RevisionSource,
        *,
        schema_version: str | None = None,
    ) -> None:
        self._permissions = permissions
        self._schemas = schemas
        self._revisions = revisions
        self._schema_version = schema_version

    async def prepare(self) -> None:
        """Fail early (NotFound) if the override schema version does not exist."""
        if self._schema_version is not None:
            await self._schemas.version(self._schema_version)

    async def replay(self, record: DecisionRecord, *, explain: bool = False) -> ReplayResult:
        original = recorded_answer(record)
        version = self._schema_version or record.schema_version
        result = ReplayResult(record, ReplayStatus.CANNOT_REPLAY, original, version)
        problem = _unreplayable(record)
        if problem is not None:
            return replace(result, problem=problem)
        try:
            item, who = _question(record)
            snap = Snapshot(
                record.tenant, record.revision, await self._schemas.version(version), record.time
            )
            replayed = await self._evaluate(snap, item, who, explain)
        except InvalidArgument as exc:  # the record's question does not parse
            return replace(result, problem=f"record is not a valid question: {exc.message}")
        except NotFound as exc:
            return replace(result, problem=exc.message)
        except _TRANSIENT as exc:
            return replace(result, problem=f"replay failed: {exc.message}")
        problem = await self._revision_problem(record.tenant, record.revision)
        if problem is not None:
            return replace(result, problem=problem)
        if replayed.verdict == original.verdict:
            return replace(result, status=ReplayStatus.MATCH, replayed=replayed)
        if not explain:  # a difference deserves both reasons
            replayed = await self._evaluate(snap, item, who, True)
            original = await self._rederive_original(record, original, item, who)
        return replace(result, status=ReplayStatus.DIFFERS, original=original, replayed=replayed)

    async def replay_many(
        self, records: AsyncIterable[DecisionRecord], *, concurrency: int = 16
    ) -> AsyncGenerator[ReplayResult, None]:
        """Results in the order of `records`, with up to `concurrency` in flight. A
        reader that stops early should close this (contextlib.aclosing): the replays in
        flight are then cancelled rather than run to their end."""
        window: deque[asyncio.Task[ReplayResult]] = deque()
        try:
            async for record in records:
                task = asyncio.create_task(self.replay(record))
                # Read here too: a reader that stopped without closing leaves the replays
                # in flight to fail alone, and asyncio would log each as never retrieved.
                task.add_done_callback(_read_outcome)
                window.append(task)
                if len(window) >= concurrency:
                    yield await window.popleft()
            while window:
                yield await window.popleft()
        finally:
            for task in window:
                task.cancel()
            await asyncio.gather(*window, return_exceptions=True)

    async def _evaluate(self, snap: Snapshot, item: CheckItem, who: _Who, explain: bool) -> Answer:
        try:
            result = await self._permissions.evaluate(
                snap, item, actor=who.actor, agents=who.agents, explain=explain
            )
        except _TRANSIENT:
            raise
        except AuthzError as exc:
            # Deny by default: a failed evaluation is an answer (the caller got an error).
            return _failed(exc)
        return _answer(result)

    async def _rederive_original(
        self,
        record: DecisionRecord,
        original: Answer,
        item: CheckItem,
        who: _Who,
    ) -> Answer:
        """With a schema override, the recorded schema can still say why the original
        answer was given, when the record did not keep it."""
        if has_tree(original.explanation) or original.error or not self._schema_version:
            return original
        snap = Snapshot(
            record.tenant,
            record.revision,
            await self._schemas.version(record.schema_version),
            record.time,
        )
        again = await self._evaluate(snap, item, who, True)
        if again.verdict != original.verdict:
            return original
        return replace(original, reason=f"{again.reason} (re-derived by replay)")

    async def _revision_problem(self, tenant: str, revision: int) -> str | None:
        try:
            await self._revisions.check_revision(tenant, revision)
        except FailedPrecondition:
            head = await self._revisions.head_revision(tenant)
            if revision > head:
                return (
                    f"revision {revision} is unknown (the head of tenant `{tenant}` is "
                    f"{head}): is this the service's database?"
                )
            return f"revision {revision} collected: it is older than the retention window"
        return None


def _read_outcome(task: asyncio.Task[ReplayResult]) -> None:
    if not task.cancelled():
        task.exception()
