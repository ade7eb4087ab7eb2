"""Turning decisions and administrative changes into decision-log records.

The record is appended before the answer leaves the server: in durable mode `append`
returns only once the record is on disk, so a decision a caller received is never
missing from the log. With logging off, decision ids are still issued, and nothing else
is done: no record fields are computed and streamed results are not collected.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from authz_service.decisionlog import (
    DecisionKind,
    DecisionRecord,
    EncodedCheck,
    encode_check,
    new_decision_id,
    new_decision_ids,
)
from authz_service.engine import CheckItem, CheckResult, Snapshot
from authz_service.engine.explain_layout import DEFAULT_MAX_EXPLANATION_NODES
from authz_service.errors import AuthzError, InvalidArgument, Unavailable
from authz_service.model import EMPTY_CONTEXT, FrozenContext, Relationship
from authz_service.service.bulk_items import PlainItem, check_item
from authz_service.service.reasons import node_to_json

__all__ = ["AuditTrail", "CallInfo", "DecisionWriter", "StreamSummary", "Unrecorded", "log_failure"]

SERVER_VERSION = "authz-service/0.1.0"

T = TypeVar("T")


class DecisionWriter(Protocol):
    def expecting(self) -> AbstractContextManager[None]:
        """Around a call that will append: lets a durable batch wait for its record."""

    def redacts(self, context: Mapping[str, Any]) -> bool:
        """Whether a record with this request context has a value of it redacted."""

    async def append(self, record: DecisionRecord | EncodedCheck) -> object: ...

    async def append_many(self, records: Sequence[DecisionRecord | EncodedCheck]) -> object:
        """The records of one call, appended in order and waited for together."""


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who is calling and how long they will wait; carried into every record."""

    credential_id: str | None = None
    deadline: float | None = None  # time.monotonic() instant
    actor: str | None = None  # impersonation: who really acted; delegation: the last agent
    reason: str | None = None
    # A delegation chain (CheckRequest.agents), recorded whole in `details.agents`.
    agents: tuple[str, ...] = ()


def _latency_us(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)


def digest_relationships(rels: Sequence[Relationship]) -> str | None:
    if not rels:
        return None
    joined = "\n".join(sorted(str(r) for r in rels))
    return hashlib.sha256(joined.encode()).hexdigest()


def _explanation(result: CheckResult, max_nodes: int) -> dict[str, Any]:
    if result.explanation is not None:
        return node_to_json(result.explanation, max_nodes)
    if result.missing_context:
        return {"missing_context": list(result.missing_context)}
    return {}


# What a call is wrapped in when logging is off: nullcontext holds no state, so one
# instance serves every call.
_NOTHING: AbstractContextManager[None] = nullcontext()

_WITHHELD = "the message is not logged: it may quote context values the log redacts"


def _failure(exc: AuthzError, redacts: bool) -> dict[str, Any]:
    """A failed evaluation's explanation: the error's class and message. An error about
    the request context (a caveat parameter of the wrong type, an expression failing on
    a value) or about a contextual relationship (which it quotes, caveat context and all)
    can quote context values, so where those must stay off the record (`_withholds`) it
    keeps the message without them (the caller's own error still names them)."""
    message = exc.message
    if redacts and isinstance(exc, InvalidArgument) and _about_context(exc.field):
        message = exc.unquoted or _WITHHELD
    return {"error": type(exc).__name__, "message": message}


def _about_context(field: str) -> bool:
    return field == "context" or field.startswith("contextual_relationships[")


def _withholds(writer: DecisionWriter, item: CheckItem, contextual: Sequence[Relationship]) -> bool:
    """Whether an error quoting context values must be logged without them: the log
    redacts part of the request context, or the values may come from the caveat context
    of contextual relationships, which the log holds only as a digest."""
    return writer.redacts(item.context) or any(
        r.caveat is not None and bool(r.caveat.context) for r in contextual
    )


def _agents(call: CallInfo) -> FrozenContext:
    """The call's `details`: its delegation chain, if any (frozen once per call)."""
    return FrozenContext({"agents": list(call.agents)}) if call.agents else EMPTY_CONTEXT


def _check_record(
    snap: Snapshot,
    item: CheckItem,
    call: CallInfo,
    details: FrozenContext,
    decision_id: str,
    kind: DecisionKind,
    decision: str,
    explanation: Mapping[str, Any],
    latency_us: int,
    *,
    cache_hit: bool = False,
    digest: str | None = None,
) -> EncodedCheck:
    # Encoded straight from the fields (no DecisionRecord): this runs for every logged
    # Check and CheckBulk item, on the event loop.
    return encode_check(
        decision_id=decision_id,
        time=snap.now,
        tenant=snap.tenant,
        kind=kind,
        subject=str(item.subject),
        action=item.permission,
        resource=str(item.resource),
        decision=decision,
        revision=snap.revision,
        schema_version=snap.schema.version,
        server_version=SERVER_VERSION,
        actor=call.actor,
        reason=call.reason,
        credential_id=call.credential_id,
        context=item.context,
        contextual_relationships_digest=digest,
        explanation=explanation,
        cache_hit=cache_hit,
        latency_us=latency_us,
        details=details,
    )


class AuditTrail:
    def __init__(
        self,
        writer: DecisionWriter | None,
        *,
        max_explanation_nodes: int = DEFAULT_MAX_EXPLANATION_NODES,
    ) -> None:
        self._writer = writer
        self._max_explanation_nodes = max_explanation_nodes

    def expecting(self) -> AbstractContextManager[None]:
        """Wraps a call that will log a decision, so that concurrent callers' records
        can share one fsync; nothing when logging is off."""
        return _NOTHING if self._writer is None else self._writer.expecting()

    async def _emit(self, writer: DecisionWriter, **fields: Any) -> str:
        decision_id = new_decision_id(fields["time"])
        record = DecisionRecord(decision_id=decision_id, server_version=SERVER_VERSION, **fields)
        await writer.append(record)
        return decision_id

    def _common(self, snap: Snapshot, call: CallInfo) -> dict[str, Any]:
        return {
            "time": snap.now,
            "tenant": snap.tenant,
            "revision": snap.revision,
            "schema_version": snap.schema.version,
            "credential_id": call.credential_id,
            "actor": call.actor,
            "reason": call.reason,
            "details": _agents(call),
        }

    async def check(
        self,
        snap: Snapshot,
        item: CheckItem,
        result: CheckResult,
        call: CallInfo,
        *,
        cache_hit: bool,
        started: float,
        contextual: Sequence[Relationship] = (),
        kind: DecisionKind = DecisionKind.CHECK,
    ) -> str:
        if self._writer is None:
            return new_decision_id(snap.now)
        return await self._log_check(
            self._writer,
            snap,
            item,
            call,
            kind,
            started,
            result.decision.value,
            _explanation(result, self._max_explanation_nodes),
            cache_hit=cache_hit,
            digest=digest_relationships(contextual),
        )

    async def check_failed(
        self,
        snap: Snapshot,
        item: CheckItem,
        call: CallInfo,
        exc: AuthzError,
        started: float,
        kind: DecisionKind = DecisionKind.CHECK,
        contextual: Sequence[Relationship] = (),
    ) -> str:
        """An evaluation error is a denial on record, with the error as the reason. The
        request's contextual relationships are digested as for an answer: replay must
        know that the failure may have come from tuples the log does not hold."""
        writer = self._writer
        if writer is None:
            return new_decision_id(snap.now)
        explanation = _failure(exc, _withholds(writer, item, contextual))
        return await self._log_check(
            writer,
            snap,
            item,
            call,
            kind,
            started,
            "DENIED",
            explanation,
            digest=digest_relationships(contextual),
        )

    async def _log_check(
        self,
        writer: DecisionWriter,
        snap: Snapshot,
        item: CheckItem,
        call: CallInfo,
        kind: DecisionKind,
        started: float,
        decision: str,
        explanation: Mapping[str, Any],
        *,
        cache_hit: bool = False,
        digest: str | None = None,
    ) -> str:
        decision_id = new_decision_id(snap.now)
        latency = _latency_us(started)
        record = _check_record(
            snap,
            item,
            call,
            _agents(call),
            decision_id,
            kind,
            decision,
            explanation,
            latency,
            cache_hit=cache_hit,
            digest=digest,
        )
        await writer.append(record)
        return decision_id

    async def check_bulk(
        self,
        snap: Snapshot,
        items: Sequence[CheckItem | PlainItem],
        results: Sequence[CheckResult | AuthzError],
        call: CallInfo,
        started: float,
        contextual: Sequence[Relationship] = (),
        evaluated: Collection[int] | None = None,
    ) -> list[str]:
        """One record per item, appended together: a durable log answers the call after
        one fsync for all of them, not one per item. `evaluated` holds the indexes of the
        items evaluated for this call; the others were answered from the decision cache
        (None: every item was evaluated)."""
        ids = new_decision_ids(len(items), snap.now)
        if self._writer is None:
            return ids
        details = _agents(call)
        digest = digest_relationships(contextual)
        latency = _latency_us(started)
        kind = DecisionKind.CHECK_BULK_ITEM
        missed = None if evaluated is None else frozenset(evaluated)
        records = []
        for index, (decision_id, plain_or_item, result) in enumerate(
            zip(ids, items, results, strict=True)
        ):
            item = check_item(plain_or_item)
            if isinstance(result, AuthzError):  # failed items were evaluated, never hits
                decision, cache_hit = "DENIED", False
                explanation = _failure(result, _withholds(self._writer, item, contextual))
            else:
                decision, cache_hit = (
                    result.decision.value,
                    missed is not None and index not in missed,
                )
                explanation = _explanation(result, self._max_explanation_nodes)
            record = _check_record(
                snap,
                item,
                call,
                details,
                decision_id,
                kind,
                decision,
                explanation,
                latency,
                cache_hit=cache_hit,
                digest=digest,
            )
            records.append(record)
        await self._writer.append_many(records)
        return ids

    async def summary(
        self,
        snap: Snapshot,
        call: CallInfo,
        *,
        kind: str,
        subject: str,
        action: str,
        resource: str,
        results: Sequence[str],
        started: float,
        context: FrozenContext = EMPTY_CONTEXT,
    ) -> str:
        """Lists and lookups are logged as the request plus a count and digest of results."""
        if self._writer is None:
            return new_decision_id(snap.now)
        digest = hashlib.sha256("\n".join(results).encode()).hexdigest()
        return await self._emit(
            self._writer,
            kind=DecisionKind(kind),
            subject=subject,
            action=action,
            resource=resource,
            decision="ALLOWED" if results else "DENIED",
            context=context,
            result_count=len(results),
            result_digest=digest,
            latency_us=_latency_us(started),
            **self._common(snap, call),
        )

    def stream_summary(
        self,
        snap: Snapshot,
        call: CallInfo,
        *,
        kind: str,
        subject: str,
        action: str,
        resource: str,
        context: FrozenContext,
    ) -> StreamSummary:
        if self._writer is None:
            return StreamSummary(None)

        def finish(results: Sequence[str], started: float) -> Any:
            return self.summary(
                snap,
                call,
                kind=kind,
                subject=subject,
                action=action,
                resource=resource,
                results=results,
                started=started,
                context=context,
            )

        return StreamSummary(finish)

    async def admin(
        self,
        tenant: str,
        call: CallInfo,
        *,
        action: str,
        resource: str,
        revision: int,
        schema_version: str,
        details: Mapping[str, Any],
        started: float,
        subject: str = "",
        reason: str | None = None,
    ) -> str:
        """An administrative change. `action` is the full gRPC method name, `subject` the
        subject acted on ("" when the change is not about one), `reason` the reason the
        caller gave; the actor is the API key that made the call, so the record answers
        "who did what to whom, and why" with top-level fields QueryDecisions filters on."""
        if self._writer is None:
            return new_decision_id()
        try:
            return await self._emit(
                self._writer,
                kind=DecisionKind.ADMIN,
                time=datetime.now(UTC),
                tenant=tenant,
                subject=subject,
                action=action,
                resource=resource,
                decision="APPLIED",
                revision=revision,
                schema_version=schema_version,
                details=details,
                credential_id=call.credential_id,
                actor=call.actor
                or (f"api_key:{call.credential_id}" if call.credential_id else None),
                reason=reason if reason is not None else call.reason,
                latency_us=_latency_us(started),
            )
        except Unavailable as exc:
            raise Unrecorded(exc.message, revision) from exc


class Unrecorded(Unavailable):
    """An administrative change that was applied (committed before its record, see
    docs/decision-log.md) and that the decision log could not record. The message says
    so: the caller must not take the error for "nothing happened". `cause` is the log's
    own message, for callers that undo the change and say so themselves."""

    def __init__(self, cause: str, revision: int) -> None:
        at = f" at revision {revision}" if revision else ""
        super().__init__(
            f"the change was applied{at}, but the decision log could not record it: {cause}"
        )
        self.cause = cause


def log_failure(exc: AuthzError) -> str:
    """Why an administrative change's record failed, without "the change was applied"."""
    return exc.cause if isinstance(exc, Unrecorded) else exc.message


class StreamSummary:
    """Wraps a result stream; logs one summary record when the stream ends, however it
    ends (exhausted, cancelled by the client, or failed), covering what was sent.
    Without a `finish` (logging off) the stream passes through untouched."""

    def __init__(self, finish: Callable[[Sequence[str], float], Any] | None) -> None:
        self._finish = finish

    def wrap(self, stream: AsyncIterator[T], describe: Callable[[T], str]) -> AsyncIterator[T]:
        if self._finish is None:
            return stream
        return self._summarized(stream, describe, self._finish)

    def wrap_pages(
        self, pages: AsyncIterator[Sequence[T]], describe: Callable[[T], str]
    ) -> AsyncIterator[Sequence[T]]:
        """`wrap` for a stream handed on in pages: each result of a page is covered."""
        if self._finish is None:
            return pages
        return self._summarized_pages(pages, describe, self._finish)

    @staticmethod
    async def _summarized_pages(
        pages: AsyncIterator[Sequence[T]],
        describe: Callable[[T], str],
        finish: Callable[[Sequence[str], float], Any],
    ) -> AsyncIterator[Sequence[T]]:
        started = time.perf_counter()
        sent: list[str] = []
        try:
            async for page in pages:
                sent.extend(describe(item) for item in page)
                yield page
        finally:
            await finish(sent, started)

    @staticmethod
    async def _summarized(
        stream: AsyncIterator[T],
        describe: Callable[[T], str],
        finish: Callable[[Sequence[str], float], Any],
    ) -> AsyncIterator[T]:
        started = time.perf_counter()
        sent: list[str] = []
        try:
            async for item in stream:
                sent.append(describe(item))
                yield item
        finally:
            await finish(sent, started)
