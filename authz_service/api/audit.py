"""AuditService: query, verify and explain the decision log, one tenant at a time.

Every call names a tenant and sees only that tenant's streams (one per server worker),
whatever its filters say. The files are read in worker threads. The service reads the
log; it never changes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import timestamp_pb2

from authz_service.api import convert
from authz_service.api.audit_convert import (
    KINDS,
    PROBLEM_KINDS,
    record_to_proto,
    replayed_to_proto,
)
from authz_service.api.calls import bind_deadline, call_info, stream_rpc, unary_rpc
from authz_service.api.cursors import CursorScope
from authz_service.api.gen.authz.v1 import audit_pb2, audit_pb2_grpc, core_pb2
from authz_service.decisionlog import Decision, DecisionRecord, Finding, RecordFilter
from authz_service.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    echo,
)
from authz_service.service import methods
from authz_service.service.log_reader import (
    Found,
    Stream,
    aiter_log,
    find_in_log,
    log_ends,
    verify_log,
)
from authz_service.service.replay import REPLAYABLE_KINDS, Replayer, ReplayStatus

__all__ = ["AuditServicer"]

Ctx = grpc.aio.ServicerContext[Any, Any]

_DECISIONS = {
    core_pb2.DECISION_ALLOWED: Decision.ALLOWED,
    core_pb2.DECISION_DENIED: Decision.DENIED,
    core_pb2.DECISION_CONDITIONAL: Decision.CONDITIONAL,
}
_FROM_KIND = {proto: kind for kind, proto in KINDS.items()}

# ReplayDecisions: records per call by default and at most, and evaluations in flight
# (each reads the database at an old revision; a few keep the pool free for live calls).
DEFAULT_REPLAY_LIMIT = 1000
MAX_REPLAY_LIMIT = 10_000
_REPLAY_CONCURRENCY = 4

Replayers = Callable[[str | None], Replayer]
"""A replayer for a schema version override (None: each record's own version)."""


def _filter(request: audit_pb2.QueryDecisionsRequest, tenant: str) -> RecordFilter:
    def subject(field: str) -> str | None:
        if not request.HasField(field):  # type: ignore[arg-type]  # field names are literals
            return None
        return str(convert.subject_ref(getattr(request, field), field))

    if request.decision and request.decision not in _DECISIONS:
        raise InvalidArgument("`decision` is not a decision", field="decision")
    if request.kind and request.kind not in _FROM_KIND:
        raise InvalidArgument("`kind` is not a decision kind", field="kind")
    decision = _DECISIONS.get(request.decision)
    return RecordFilter(
        tenant=tenant,
        subject=subject("subject"),
        actor=subject("actor"),
        resource=(
            str(convert.object_ref(request.resource, "resource"))
            if request.HasField("resource")
            else None
        ),
        action=request.action or None,
        # ALLOWED also matches admin records that were APPLIED; see `_wanted`.
        decision=None if decision is Decision.ALLOWED else decision,
        kind=_FROM_KIND.get(request.kind),
        since=_bound(request.start_time, "start_time") if request.HasField("start_time") else None,
        until=_bound(request.end_time, "end_time") if request.HasField("end_time") else None,
    )


def _bound(stamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    """A time bound rounded up to whole microseconds, as record times are: it then selects
    exactly the records the bound itself does (`start_time` inclusive, `end_time`
    exclusive), where cutting the nanoseconds off would let `start_time` take in a record
    dated before it."""
    value = convert.timestamp(stamp, field)
    if stamp.nanos % 1000:
        try:
            value += timedelta(microseconds=1)
        except OverflowError:
            raise InvalidArgument(
                f"`{field}` is later than any time a record can have", field=field
            ) from None
    return value


def _replay_filter(request: audit_pb2.ReplayDecisionsRequest, tenant: str) -> RecordFilter:
    since = _bound(request.start_time, "start_time") if request.HasField("start_time") else None
    until = _bound(request.end_time, "end_time") if request.HasField("end_time") else None
    if since is not None and until is not None and until <= since:
        raise InvalidArgument("`end_time` must be after `start_time`", field="end_time")
    return RecordFilter(
        tenant=tenant,
        subject=(
            str(convert.subject_ref(request.subject, "subject"))
            if request.HasField("subject")
            else None
        ),
        resource=(
            str(convert.object_ref(request.resource, "resource"))
            if request.HasField("resource")
            else None
        ),
        since=since,
        until=until,
    )


def _replay_limit(limit: int) -> int:
    if limit > MAX_REPLAY_LIMIT:
        raise InvalidArgument(
            f"`limit` is {limit}; at most {MAX_REPLAY_LIMIT} records are replayed per call",
            field="limit",
        )
    return limit or DEFAULT_REPLAY_LIMIT


_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", re.DOTALL)


def _public_keys(pem: str) -> list[Ed25519PublicKey]:
    """Every key of `public_key_pem`: one PEM block, or after key rotations one per key
    the log was signed with, concatenated (as in a CA bundle)."""
    blocks = _PEM_BLOCK.findall(pem) or [pem]  # no block: let the parser say what is wrong
    keys = []
    for block in blocks:
        try:
            key = serialization.load_pem_public_key(block.encode())
        except ValueError:
            raise InvalidArgument(
                "`public_key_pem` is not a pem public key", field="public_key_pem"
            ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidArgument("`public_key_pem` is not an ed25519 key", field="public_key_pem")
        keys.append(key)
    return keys


async def _damage_reported(tenant: str, found: AsyncIterator[Found]) -> AsyncIterator[Found]:
    """The reader names the damaged file; callers of the API get no server paths."""
    try:
        async for item in found:
            yield item
    except FailedPrecondition:
        raise FailedPrecondition(
            f"the decision log of tenant `{echo(tenant)}` has a damaged record: call VerifyLog"
        ) from None


def _problem(stream: Stream, first: Finding | None) -> audit_pb2.LogProblem | None:
    if first is None:
        return None
    # A finding without a line is about a file, which its message names.
    where = f"{first.segment.name}:{first.line}: " if first.segment and first.line else ""
    return audit_pb2.LogProblem(
        kind=PROBLEM_KINDS[first.problem],
        sequence=max(first.seq or 0, 0),
        decision_id=first.decision_id or "",
        description=f"stream `{stream.name}`, {where}{first.message}",
    )


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """Reads every writer root under `log_dir`; `public_keys` are the server's own
    checkpoint key and those it replaced, used by VerifyLog when the request brings none."""

    def __init__(
        self,
        log_dir: Path,
        public_keys: Sequence[Ed25519PublicKey] | None = None,
        *,
        replayers: Replayers | None = None,
        default_deadline_s: float = 5.0,
    ) -> None:
        self._log_dir = log_dir
        self._public_keys = public_keys
        self._replayers = replayers
        self._default_deadline_s = default_deadline_s

    @stream_rpc
    async def QueryDecisions(
        self, request: audit_pb2.QueryDecisionsRequest, context: Ctx
    ) -> AsyncIterator[audit_pb2.QueryDecisionsResponse]:
        tenant = convert.tenant(request.tenant)
        where = _filter(request, tenant)
        scope = CursorScope.of(methods.QUERY_DECISIONS, tenant, request)
        resumed = scope.resume_log(request.cursor)
        allowed_only = request.decision == core_pb2.DECISION_ALLOWED
        if not self._log_dir.is_dir():
            return
        # The log as the first page found it: later pages stop where it ended then, so
        # records appended between pages are not in them (the log is append-only, so
        # nothing before that end changes).
        if resumed is None:
            through = await asyncio.to_thread(log_ends, self._log_dir, tenant)
            after: dict[str, int] = {}
        else:
            through, after = resumed
        found_log = aiter_log(self._log_dir, where, after=after, through=through)
        sent = 0
        async for found in _damage_reported(tenant, found_log):
            record = found.stored.entry.record
            if record.tenant != tenant:  # belt and braces: streams are per tenant
                continue
            if allowed_only and record.decision not in (Decision.ALLOWED, Decision.APPLIED):
                continue
            after[found.stream.name] = found.stored.entry.seq
            yield audit_pb2.QueryDecisionsResponse(
                record=record_to_proto(found.stored.entry),
                cursor=scope.issue(through, after),
            )
            sent += 1
            if request.limit and sent >= request.limit:
                return

    @stream_rpc
    async def ReplayDecisions(
        self, request: audit_pb2.ReplayDecisionsRequest, context: Ctx
    ) -> AsyncIterator[audit_pb2.ReplayDecisionsResponse]:
        tenant = convert.tenant(request.tenant)
        where = _replay_filter(request, tenant)
        limit = _replay_limit(request.limit)
        if self._replayers is None:
            raise FailedPrecondition("this server cannot replay decisions")
        call = call_info(context, self._default_deadline_s)  # bounds every read below
        replayer = self._replayers(request.schema_version or None)
        truncated = False

        async def records() -> AsyncIterator[DecisionRecord]:
            nonlocal truncated
            if not self._log_dir.is_dir():
                return
            taken = 0
            async for found in _damage_reported(tenant, aiter_log(self._log_dir, where)):
                record = found.stored.entry.record
                if record.tenant != tenant or record.kind not in REPLAYABLE_KINDS:
                    continue
                if taken == limit:
                    truncated = True
                    return
                taken += 1
                yield record

        counts: Counter[ReplayStatus] = Counter()
        try:
            await replayer.prepare()  # NotFound for an unknown `schema_version`
            replaying = replayer.replay_many(records(), concurrency=_REPLAY_CONCURRENCY)
            # Closed however the loop ends: the replays in flight are cancelled with it.
            async with contextlib.aclosing(replaying) as replayed:
                async for result in replayed:
                    # A replay cut by the deadline says so; never reported as complete.
                    if call.deadline is not None and time.monotonic() >= call.deadline:
                        raise DeadlineExceeded("the call's deadline passed")
                    counts[result.status] += 1
                    yield audit_pb2.ReplayDecisionsResponse(decision=replayed_to_proto(result))
        except DeadlineExceeded as exc:  # here or in a read the replay waited for
            raise DeadlineExceeded(
                f"replay ran out of time after {counts.total()} records: "
                "replay a shorter time range"
            ) from exc
        yield audit_pb2.ReplayDecisionsResponse(
            summary=audit_pb2.ReplaySummary(
                match_count=counts[ReplayStatus.MATCH],
                differ_count=counts[ReplayStatus.DIFFERS],
                cannot_replay_count=counts[ReplayStatus.CANNOT_REPLAY],
                truncated=truncated,
            )
        )

    @unary_rpc
    async def VerifyLog(
        self, request: audit_pb2.VerifyLogRequest, context: Ctx
    ) -> audit_pb2.VerifyLogResponse:
        tenant = convert.tenant(request.tenant)
        keys = _public_keys(request.public_key_pem) if request.public_key_pem else self._public_keys
        if keys is None:
            raise FailedPrecondition(
                "the server has no checkpoint signing key: send `public_key_pem`"
            )

        def verify() -> audit_pb2.VerifyLogResponse:
            if not self._log_dir.is_dir():
                return audit_pb2.VerifyLogResponse(verified=True)
            results = verify_log(self._log_dir, keys, tenant=tenant)
            response = audit_pb2.VerifyLogResponse(
                verified=all(report.ok for _, report in results),
                record_count=sum(report.records for _, report in results),
                checkpoint_count=sum(report.checkpoints for _, report in results),
            )
            known = [report.signed_at for _, report in results if report.signed_at]
            if known:
                response.latest_checkpoint_time.FromDatetime(max(known))
            for stream, report in results:
                problem = _problem(stream, report.first)
                response.streams.add(
                    stream=stream.name,
                    verified=report.ok,
                    record_count=report.records,
                    checkpoint_count=report.checkpoints,
                    first_problem=problem,
                )
                if problem is not None and not response.HasField("first_problem"):
                    response.first_problem.CopyFrom(problem)
            return response

        return await asyncio.to_thread(verify)

    @unary_rpc
    async def ExplainDecision(
        self, request: audit_pb2.ExplainDecisionRequest, context: Ctx
    ) -> audit_pb2.ExplainDecisionResponse:
        bind_deadline(context, self._default_deadline_s)  # bounds its database reads
        tenant = convert.tenant(request.tenant)
        if not request.decision_id:
            raise InvalidArgument("`decision_id` is required", field="decision_id")
        if not self._log_dir.is_dir():
            raise NotFound(f"decision `{echo(request.decision_id)}` is not in the decision log")
        found = await asyncio.to_thread(
            find_in_log, self._log_dir, request.decision_id, tenant=tenant
        )
        return audit_pb2.ExplainDecisionResponse(record=record_to_proto(found.stored.entry))
