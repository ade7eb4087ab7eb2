"""The decision pipeline behind Check and its companions, free of gRPC.

For every call: choose the revision from the caller's consistency, answer from the cache
when the key (tenant, revision, schema version, request) is present, otherwise ask the
engine, then log the decision before returning it. Identical Checks that miss at the same
time are computed once: later ones wait for the first (within their own deadline) and
compute for themselves only if it fails. The gRPC servicers and the Envoy
adapter both call this, so every entry point gets the same semantics.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from types import MappingProxyType
from typing import Any, TypeVar, cast

from authz_service import deadline
from authz_service.cache.lru import DecisionCache
from authz_service.cache.results import StoredResult, loaded, stored
from authz_service.engine import (
    CheckItem,
    CheckResult,
    Decision,
    Engine,
    ResourceResult,
    Snapshot,
    SubjectResult,
)
from authz_service.errors import AuthzError, DeadlineExceeded, InvalidArgument
from authz_service.model import (
    NO_RELATION,
    Consistency,
    ConsistencyMode,
    FrozenContext,
    ObjectRef,
    Relationship,
    Revision,
    SubjectRef,
)
from authz_service.revisions import RevisionResolver
from authz_service.service.admission import TenantSlots
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.bulk_items import PlainItem, check_item
from authz_service.service.gates import DEFAULT_IMPERSONATE_PERMISSION, DecisionRules
from authz_service.service.refresh import AskedChecks
from authz_service.service.schemas import SchemaManager
from authz_service.tenancy import SubjectStatus, SubjectStatuses
from authz_service.tenancy.suspension import TenantSuspensions

__all__ = ["CheckOutcome", "ListOutcome", "PermissionService"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_REFRESH_BATCH = 100  # Checks computed ahead per evaluation (and per deadline)

_DECISION_OF = attrgetter("decision")

_NONE_REFUSED: Mapping[int, AuthzError] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    result: CheckResult
    revision: Revision
    decision_id: str
    cache_hit: bool


@dataclass(frozen=True, slots=True)
class ListOutcome:
    permissions: list[tuple[str, CheckResult]]
    revision: Revision
    decision_id: str


def _admitted(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run a call within its tenant's share (`TenantSlots`) and under its deadline, which
    then bounds each database read as well (the revision lookup included), not only the
    evaluation. Calls take `tenant` first and a `CallInfo`."""

    @functools.wraps(method)
    async def wrapper(self: PermissionService, tenant: str, *args: Any, **kwargs: Any) -> T:
        call = _call_of(args) or _call_of(kwargs.values())
        if call is None:
            raise TypeError(f"{method.__name__} was called without its CallInfo")
        with self.slots.hold(tenant), deadline.within(call.deadline):
            return await method(self, tenant, *args, **kwargs)

    return wrapper


def _call_of(values: Iterable[object]) -> CallInfo | None:
    for value in values:
        if type(value) is CallInfo:
            return value
    return None


class PermissionService:
    def __init__(
        self,
        *,
        engine: Engine,
        schemas: SchemaManager,
        resolver: RevisionResolver,
        cache: DecisionCache[StoredResult],
        audit: AuditTrail,
        max_batch: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe: Callable[[str, bool, int], None] | None = None,
        statuses: SubjectStatuses | None = None,
        impersonate_permission: str = DEFAULT_IMPERSONATE_PERMISSION,
        tenants: TenantSuspensions | None = None,
        slots: TenantSlots | None = None,
        refresh_ahead_s: float = 0.0,
        refresh_deadline_s: float = 5.0,
    ) -> None:
        """`statuses` enables the subject lifecycle (suspended and deprovisioned subjects
        are denied everything), `tenants` the tenant's (a suspended tenant is denied
        everything); `impersonate_permission` is the permission an actor needs on the
        subject's object to act on its behalf (see service/gates.py); `slots` bounds each
        tenant's calls in flight (unbounded without). `refresh_ahead_s` (0: off) is how
        long before a quantization window ends its plain Checks are computed at the next
        window's revision (service/refresh.py), each within `refresh_deadline_s`."""
        self.slots = slots or TenantSlots(sys.maxsize)
        self._engine = engine
        self._rules = DecisionRules(
            engine, statuses, impersonate_permission=impersonate_permission, tenants=tenants
        )
        self._schemas = schemas
        self._resolver = resolver
        self._cache = cache
        self._audit = audit
        self._max_batch = max_batch
        self._clock = clock
        # (outcome, cache hit, how many decisions): a metric, counted per decision
        self._observe = observe or (lambda outcome, cache_hit, count: None)
        # Checks being computed, by cache key: their result, or None if the computation failed
        self._inflight: dict[tuple[object, ...], asyncio.Future[CheckResult | None]] = {}
        self.coalesced = 0  # Checks answered by an identical one computed at the same time
        self._refresh_ahead_s = refresh_ahead_s
        self._refresh_deadline_s = refresh_deadline_s
        self._asked = AskedChecks()
        self._refreshing: dict[str, asyncio.Task[None]] = {}  # by tenant
        self.refreshed = 0  # Checks computed ahead for the next window

    async def snapshot(self, tenant: str, consistency: Consistency) -> Snapshot:
        schema, revision = await self._schemas.for_read(self._resolver, tenant, consistency)
        return Snapshot(
            tenant=tenant,
            revision=revision,
            schema=schema,
            now=self._clock(),
            shared_cache=consistency.mode is not ConsistencyMode.FULLY_CONSISTENT,
        )

    async def evaluate(
        self,
        snap: Snapshot,
        item: CheckItem,
        *,
        actor: SubjectRef | None = None,
        agents: Sequence[SubjectRef] = (),
        explain: bool = False,
        contextual: Sequence[Relationship] = (),
    ) -> CheckResult:
        """The decision itself, free of caching and logging. Live checks and replay both
        call this, so a replayed decision is judged by exactly the same rules: the
        engine's answer, subject lifecycle, impersonation and delegation
        (service/gates.py)."""
        return await self._rules.evaluate(
            snap, item, actor=actor, agents=agents, explain=explain, contextual=contextual
        )

    async def evaluate_bulk(
        self,
        snap: Snapshot,
        items: Sequence[CheckItem],
        *,
        actor: SubjectRef | None = None,
        agents: Sequence[SubjectRef] = (),
        explain: bool = False,
        contextual: Sequence[Relationship] = (),
    ) -> list[CheckResult | AuthzError]:
        """`evaluate` for many items at one snapshot, sharing subproblems."""
        return await self._rules.evaluate_bulk(
            snap, items, actor=actor, agents=agents, explain=explain, contextual=contextual
        )

    @_admitted
    async def check(
        self,
        tenant: str,
        item: CheckItem,
        consistency: Consistency,
        call: CallInfo,
        *,
        explain: bool = False,
        contextual: Sequence[Relationship] = (),
        actor: SubjectRef | None = None,
        agents: Sequence[SubjectRef] = (),
    ) -> CheckOutcome:
        # In flight until its record is appended: a durable batch may wait for it.
        with self._audit.expecting():
            return await self._check(
                tenant, item, consistency, call, explain, contextual, actor, tuple(agents)
            )

    async def _check(
        self,
        tenant: str,
        item: CheckItem,
        consistency: Consistency,
        call: CallInfo,
        explain: bool,
        contextual: Sequence[Relationship],
        actor: SubjectRef | None,
        agents: tuple[SubjectRef, ...],
    ) -> CheckOutcome:
        started = time.perf_counter()
        _require_reason(actor, call)
        snap = await self.snapshot(tenant, consistency)
        # Strict reads, explanations and request-only relationships never share answers.
        shareable = snap.shared_cache and not explain and not contextual
        key = _check_key(snap, item, actor, agents)
        hit = self._cache.get(key, snap.now) if shareable else None
        result = None if hit is None else loaded(hit)
        cache_hit = result is not None
        if result is None:
            try:
                result = await self._computed(
                    key if shareable else None,
                    snap,
                    call,
                    lambda: self.evaluate(
                        snap,
                        item,
                        actor=actor,
                        agents=agents,
                        explain=explain,
                        contextual=contextual,
                    ),
                )
            except AuthzError as exc:
                self._observe("ERROR", False, 1)
                await self._audit.check_failed(
                    snap, item, call, exc, started, contextual=contextual
                )
                raise
            if shareable and result.cacheable:
                self._cache.put(key, stored(result), result.valid_until)
        if cache_hit and self._refreshes(shareable, consistency, actor, agents):
            self._asked.add(tenant, snap.revision, item)
            self._refresh_soon(tenant, snap.revision)
        self._observe(result.decision.value, cache_hit, 1)
        decision_id = await self._audit.check(
            snap, item, result, call, cache_hit=cache_hit, started=started, contextual=contextual
        )
        return CheckOutcome(result, snap.revision, decision_id, cache_hit)

    def _refreshes(
        self,
        shareable: bool,
        consistency: Consistency,
        actor: SubjectRef | None,
        agents: tuple[SubjectRef, ...],
    ) -> bool:
        """Whether a call's Checks are remembered for refresh ahead: shared answers of
        minimize_latency reads, with no actor or agents (service/refresh.py). Only those
        answered from the cache are: asked again within a window, so likely to be asked
        in the next; a Check asked once (uncached traffic) is not computed twice."""
        return (
            self._refresh_ahead_s > 0
            and shareable
            and consistency.mode is ConsistencyMode.MINIMIZE_LATENCY
            and actor is None
            and not agents
        )

    def _refresh_soon(self, tenant: str, revision: Revision) -> None:
        """Start computing the plain Checks asked at `revision` at the next window's
        revision, once the resolver has chosen it (near the window's end), one task per
        tenant at a time."""
        if tenant in self._refreshing:
            return
        upcoming = self._resolver.upcoming(tenant, self._refresh_ahead_s)
        if upcoming is None:
            return
        items = self._asked.at(tenant, revision)
        if not items:
            return
        # A context of its own: not the triggering call's deadline, request id or span.
        task = asyncio.get_running_loop().create_task(
            self._refresh(tenant, upcoming, items),
            name=f"authz-refresh-ahead-{tenant}",
            context=contextvars.Context(),
        )
        self._refreshing[tenant] = task
        task.add_done_callback(lambda _done: self._refreshing.pop(tenant, None))

    async def _refresh(
        self, tenant: str, revision: Revision, items: list[CheckItem | PlainItem]
    ) -> None:
        """Compute `items` at `revision` into the cache, as minimize_latency Checks of the
        next window would: the same snapshot form, keys and evaluation (`evaluate_bulk`,
        which shares subproblems, 100 at a time), within the tenant's share of calls in
        flight and a deadline per batch. Best effort: what is not computed here, a caller
        computes; an error is never cached."""
        try:
            snap = Snapshot(
                tenant=tenant,
                revision=revision,
                schema=await self._schemas.at_least(0),
                now=self._clock(),
                shared_cache=True,
            )
            keys = _bulk_keys(snap, items, None, ())
            todo = [
                (key, check_item(item))
                for key, item in zip(keys, items, strict=True)
                if not self._cache.holds(key, snap.now)
            ]
            for start in range(0, len(todo), _REFRESH_BATCH):
                batch = todo[start : start + _REFRESH_BATCH]
                until = time.monotonic() + self._refresh_deadline_s
                with self.slots.hold(tenant), deadline.within(until):
                    results = await _within(
                        until, self.evaluate_bulk(snap, [item for _, item in batch])
                    )
                for (key, _), result in zip(batch, results, strict=True):
                    if isinstance(result, CheckResult) and result.cacheable:
                        self._cache.put(key, stored(result), result.valid_until)
                        self.refreshed += 1
        except Exception as exc:
            logger.debug("refresh ahead of tenant %s stopped: %s", tenant, exc)

    async def _computed(
        self,
        key: tuple[object, ...] | None,
        snap: Snapshot,
        call: CallInfo,
        compute: Callable[[], Awaitable[CheckResult]],
    ) -> CheckResult:
        """`compute()` within the call's deadline, shared with identical concurrent calls."""
        if key is None:
            return await _within(call.deadline, compute())
        running = self._inflight.get(key)
        if running is not None:
            shared = await _within(call.deadline, asyncio.shield(running))
            if shared is not None and (shared.valid_until is None or snap.now < shared.valid_until):
                self.coalesced += 1
                return shared
            return await _within(call.deadline, compute())
        done: asyncio.Future[CheckResult | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = done
        result: CheckResult | None = None
        try:
            result = await _within(call.deadline, compute())
        finally:
            del self._inflight[key]
            done.set_result(result)  # None: the waiting calls compute for themselves
        return result

    @_admitted
    async def check_bulk(
        self,
        tenant: str,
        items: Sequence[CheckItem | PlainItem],
        consistency: Consistency,
        call: CallInfo,
        *,
        explain: bool = False,
        contextual: Sequence[Relationship] = (),
        actor: SubjectRef | None = None,
        agents: Sequence[SubjectRef] = (),
        refused: Mapping[int, AuthzError] = _NONE_REFUSED,
    ) -> tuple[Revision, list[CheckResult | AuthzError], list[str]]:
        """`items` in order, except the positions in `refused`: items the caller could
        not even read, which answer with their error in their slot (and, not being
        decisions, have no decision id or record)."""
        _require_reason(actor, call)
        size = len(items) + len(refused)
        if not size:
            raise InvalidArgument(
                "`items` is empty: a batch needs at least one item", field="items"
            )
        if size > self._max_batch:
            raise InvalidArgument(
                f"batch of {size} items exceeds the limit of {self._max_batch}",
                field="items",
                value=size,
            )
        started = time.perf_counter()
        snap = await self.snapshot(tenant, consistency)
        if not items:
            # Every item was refused: the batch's own parts (actor, agents) are still
            # checked, as they would be with one item to decide.
            await self.evaluate_bulk(snap, [], actor=actor, agents=tuple(agents))
            return (snap.revision, *_with_refused([], [], refused))
        # Items share Check's decision cache (same key, same rules): a page of resources
        # checked again and again costs a lookup per item, not an evaluation.
        shareable = snap.shared_cache and not explain and not contextual
        chain = tuple(agents)
        keys = _bulk_keys(snap, items, actor, chain)
        hits = self._cache.get_many(keys, snap.now) if shareable else [None] * len(keys)
        found: list[CheckResult | AuthzError | None] = [
            None if hit is None else loaded(hit) for hit in hits
        ]
        missing = [i for i, result in enumerate(found) if result is None]
        if missing:
            computed = await _within(
                call.deadline,
                self.evaluate_bulk(
                    snap,
                    [check_item(items[i]) for i in missing],
                    actor=actor,
                    agents=chain,
                    explain=explain,
                    contextual=contextual,
                ),
            )
            for i, result in zip(missing, computed, strict=True):
                found[i] = result
                if shareable and isinstance(result, CheckResult) and result.cacheable:
                    self._cache.put(keys[i], stored(result), result.valid_until)
        results = cast(list[CheckResult | AuthzError], found)  # every None was filled
        if self._refreshes(shareable, consistency, actor, chain) and len(missing) < len(items):
            missed = set(missing)
            self._asked.add_many(
                tenant, snap.revision, (it for i, it in enumerate(items) if i not in missed)
            )
            self._refresh_soon(tenant, snap.revision)
        self._count(results, missing)
        ids = await self._audit.check_bulk(
            snap, items, results, call, started, contextual, evaluated=missing
        )
        if refused:
            results, ids = _with_refused(results, ids, refused)
        return snap.revision, results, ids

    def _count(self, results: list[CheckResult | AuthzError], missing: list[int]) -> None:
        """The decision metric, updated once per (outcome, cache hit) with a count rather
        than once per item. Hits are counted in C (`list.count` compares by identity
        first, and a Decision hashes in Python); misses are few, and cost an evaluation."""
        hits: list[Any] = results
        if missing:
            missed = set(missing)
            hits = [r for i, r in enumerate(results) if i not in missed]
            tally = Counter(
                "ERROR" if isinstance(r, AuthzError) else r.decision.value
                for r in (results[i] for i in missing)
            )
            for outcome, count in tally.items():
                self._observe(outcome, False, count)
        decisions = list(map(_DECISION_OF, hits))
        for decision in Decision:
            count = decisions.count(decision)
            if count:
                self._observe(decision.value, True, count)

    @_admitted
    async def list_permissions(
        self,
        tenant: str,
        resource: ObjectRef,
        subject: SubjectRef,
        context: FrozenContext,
        consistency: Consistency,
        call: CallInfo,
        *,
        contextual: Sequence[Relationship] = (),
    ) -> ListOutcome:
        started = time.perf_counter()
        snap = await self.snapshot(tenant, consistency)
        found = await self._rules.blocked_list(snap, resource, subject)
        if found is None:
            found = await _within(
                call.deadline,
                self._engine.list_permissions(
                    snap, resource, subject, context, contextual=contextual
                ),
            )
        decision_id = await self._audit.summary(
            snap,
            call,
            kind="list_permissions",
            subject=str(subject),
            action="*",
            resource=str(resource),
            results=[f"{p}={r.decision.value}" for p, r in found],
            started=started,
            context=context,
        )
        return ListOutcome(found, snap.revision, decision_id)

    async def lookup_resources(
        self,
        tenant: str,
        resource_type: str,
        permission: str,
        subject: SubjectRef,
        context: FrozenContext,
        consistency: Consistency,
        call: CallInfo,
        *,
        after: str | None = None,
        limit: int | None = None,
        contextual: Sequence[Relationship] = (),
    ) -> tuple[Revision, AsyncIterator[ResourceResult]]:
        with deadline.within(call.deadline):
            snap = await _within(call.deadline, self.snapshot(tenant, consistency))
        pages = self._engine.lookup_resource_pages(
            snap,
            resource_type,
            permission,
            subject,
            context,
            contextual=contextual,
            after=after,
            limit=limit,
        )
        with deadline.within(call.deadline):
            active = await _within(call.deadline, self._active(snap, subject))
        if not active:
            pages = _nothing()  # an inactive subject or tenant reaches nothing
        summary = self._audit.stream_summary(
            snap,
            call,
            kind="lookup_resources",
            subject=str(subject),
            action=permission,
            resource=f"{resource_type}:*",
            context=context,
        )
        results = summary.wrap_pages(pages, lambda r: f"{r.resource_id}={r.decision.value}")
        return snap.revision, self._held(tenant, results, call.deadline)

    async def lookup_subjects(
        self,
        tenant: str,
        resource: ObjectRef,
        permission: str,
        subject_type: str,
        subject_relation: str,
        context: FrozenContext,
        consistency: Consistency,
        call: CallInfo,
        *,
        after: str | None = None,
        limit: int | None = None,
        contextual: Sequence[Relationship] = (),
    ) -> tuple[Revision, AsyncIterator[SubjectResult]]:
        with deadline.within(call.deadline):
            snap = await _within(call.deadline, self.snapshot(tenant, consistency))
        stream = self._engine.lookup_subjects(
            snap,
            resource,
            permission,
            subject_type,
            context,
            subject_relation=subject_relation,
            contextual=contextual,
            after=after,
        )
        # Inactive subjects are left out, so the limit is applied after them.
        stream = self._rules.filter_subjects(snap, subject_type, stream, limit)
        summary = self._audit.stream_summary(
            snap,
            call,
            kind="lookup_subjects",
            subject=f"{subject_type}:*",
            action=permission,
            resource=str(resource),
            context=context,
        )
        results = summary.wrap(stream, lambda s: f"{s.subject_id}={s.decision.value}")
        return snap.revision, self._held(tenant, _one_by_one(results), call.deadline)

    async def _active(self, snap: Snapshot, subject: SubjectRef) -> bool:
        status = await self._rules.status(snap, subject)
        return status is SubjectStatus.ACTIVE and not await self._rules.tenant_suspended(snap)

    async def _held(
        self, tenant: str, pages: AsyncIterator[Sequence[T]], until: float | None
    ) -> AsyncIterator[T]:
        """A lookup holds one of its tenant's slots while it streams, and the whole
        stream ends at the call's deadline (`until`): each step (a page of results), the
        database reads it waits for included, gets only what is left of it. Results are
        handed on one by one; the deadline is armed once per page, not per result."""
        with self.slots.hold(tenant):
            while True:
                with deadline.within(until):
                    try:
                        page = await _within(until, anext(pages))
                    except StopAsyncIteration:
                        return
                for found in page:
                    yield found


def _check_key(
    snap: Snapshot,
    item: CheckItem,
    actor: SubjectRef | None,
    agents: tuple[SubjectRef, ...] = (),
) -> tuple[object, ...]:
    """Everything a Check's answer depends on, as a flat tuple of strings and ints: it is
    hashed and compared on every call, which Python does in C for these (a key holding
    the request's dataclasses is hashed field by field in Python). Ids and names cannot
    contain one another's separators, and each is its own element anyway. A delegation
    chain is part of the key, in order, so no answer is shared across chains."""
    r, s = item.resource, item.subject
    who: tuple[object, ...] | None = None
    if actor is not None:
        who = (actor.type, actor.id, actor.relation)
    elif agents:
        who = ("agents", *((a.type, a.id, a.relation) for a in agents))
    return (
        "check",
        snap.tenant,
        snap.revision,
        snap.schema.version,
        r.type,
        r.id,
        item.permission,
        s.type,
        s.id,
        s.relation,
        item.context.canonical,
        who,
    )


# A plain item whose strings are looked for in its own key (`_bulk_keys`).
_PROBE: PlainItem = ("probe/resource", "r", "probe/permission", "probe/subject", "s", NO_RELATION)


def _bulk_keys(
    snap: Snapshot,
    items: Sequence[CheckItem | PlainItem],
    actor: SubjectRef | None,
    agents: tuple[SubjectRef, ...],
) -> list[tuple[object, ...]]:
    """`_check_key` of every item. A PlainItem holds the strings of its key in key order,
    so its key is the call's common head and tail around it: two tuple concatenations
    instead of a call, found from the key of a probe item rather than restating the
    key's layout here (tests/cache/test_check_key.py holds the two equal)."""
    probe = _check_key(snap, check_item(_PROBE), actor, agents)
    at = probe.index(_PROBE[0])
    head, tail = probe[:at], probe[at + len(_PROBE) :]
    if probe[at : at + len(_PROBE)] != _PROBE:
        return [_check_key(snap, check_item(item), actor, agents) for item in items]
    return [
        head + item + tail if isinstance(item, tuple) else _check_key(snap, item, actor, agents)
        for item in items
    ]


async def _nothing() -> AsyncIterator[list[ResourceResult]]:
    return
    yield  # an async generator that yields nothing


async def _one_by_one(stream: AsyncIterator[T]) -> AsyncIterator[list[T]]:
    async for found in stream:
        yield [found]


def _require_reason(actor: SubjectRef | None, call: CallInfo) -> None:
    if actor is not None and not (call.reason or "").strip():
        raise InvalidArgument(
            "a `reason` (not only whitespace) is required when acting on behalf of a subject",
            field="reason",
        )


async def _within(deadline: float | None, work: Awaitable[T]) -> T:
    """Run `work` (a coroutine) before the monotonic `deadline`; DeadlineExceeded otherwise.

    Cancelling the engine mid-evaluation is safe: it holds no locks and writes nothing.
    """
    if deadline is None:
        return await work
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded("deadline exceeded before evaluation started")
    try:
        async with asyncio.timeout(remaining):
            return await work
    except TimeoutError:
        raise DeadlineExceeded("deadline exceeded during evaluation") from None


def _with_refused(
    results: list[CheckResult | AuthzError], ids: list[str], refused: Mapping[int, AuthzError]
) -> tuple[list[CheckResult | AuthzError], list[str]]:
    """The answers of a batch in item order: the refused items' errors at their
    positions (no decision id), the decided items' answers in the others."""
    answers = iter(zip(results, ids, strict=True))
    merged: list[CheckResult | AuthzError] = []
    merged_ids: list[str] = []
    for position in range(len(results) + len(refused)):
        error = refused.get(position)
        result, decision_id = (error, "") if error is not None else next(answers)
        merged.append(result)
        merged_ids.append(decision_id)
    return merged, merged_ids
