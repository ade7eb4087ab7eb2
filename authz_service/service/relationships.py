"""Writing, deleting, reading and watching relationships of one tenant.

Every write is validated against the current schema before it reaches the store, is
atomic (the store applies all updates at one revision or none), and is logged as an
administrative change. Types whose names start with `__` are internal bookkeeping
(roles, bindings, subject lifecycle) and never pass through this API.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from authz_service import deadline
from authz_service.errors import DeadlineExceeded, InvalidArgument, Unavailable, echo
from authz_service.model import (
    Consistency,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    ReplayedRevision,
    Revision,
    UpdateOp,
)
from authz_service.revisions import RevisionResolver
from authz_service.schema.relationships import check_relationship
from authz_service.service import methods
from authz_service.service.admission import TenantSlots, WatchSlots
from authz_service.service.audit import AuditTrail, CallInfo
from authz_service.service.schemas import SchemaManager
from authz_service.store.protocol import Change, Precondition, Store

__all__ = ["INTERNAL_PREFIX", "RelationshipService", "WatchEvent"]

INTERNAL_PREFIX = "__"
_LOGGED_UPDATES = 100  # an admin record lists at most this many updates, plus the count


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """What `watch` yields. With changes: changes of `revision` (all of them, or a part
    when `complete` is False and more of the revision follows). Without: progress, every
    change through `revision` has been yielded."""

    revision: Revision
    changes: list[Change]
    complete: bool = True


def is_internal(rel: Relationship) -> bool:
    return rel.resource.type.startswith(INTERNAL_PREFIX) or rel.subject.type.startswith(
        INTERNAL_PREFIX
    )


def _visible(flt: RelationshipFilter) -> RelationshipFilter:
    """`flt` as callers mean it: without a resource type it could match internal rows
    (`__binding:b#subject@user:erin`), which this API never shows or changes."""
    if flt.resource_type is not None:
        return flt
    return replace(flt, spare_resource_prefix=INTERNAL_PREFIX)


def _visible_all(preconditions: Sequence[Precondition]) -> list[Precondition]:
    return [replace(p, filter=_visible(p.filter)) for p in preconditions]


class RelationshipService:
    def __init__(
        self,
        *,
        store: Store,
        schemas: SchemaManager,
        resolver: RevisionResolver,
        audit: AuditTrail,
        max_batch: int = 1000,
        watch_poll_s: float = 0.5,
        watch_read_s: float = 5.0,
        slots: TenantSlots | None = None,
        watches: WatchSlots | None = None,
    ) -> None:
        """`slots` are the tenants' shares of calls in flight, which a ReadRelationships
        stream holds one of while it is open (`reading`); `watches` bounds the open
        Watch streams (`watching`)."""
        self._store = store
        self._schemas = schemas
        self._resolver = resolver
        self._audit = audit
        self._max_batch = max_batch
        self._watch_poll = watch_poll_s
        self._watch_read = watch_read_s
        self.slots = slots or TenantSlots(sys.maxsize)
        self.watches = watches or WatchSlots(sys.maxsize, sys.maxsize)
        # Set (and replaced) when a revision is written here: watches wait on it. An Event,
        # not a Condition: a watch cancelled inside Condition.wait under wait_for could
        # leave the lock taken, and every write's announcement then waited forever.
        self._new_revision = asyncio.Event()
        self._stopping = False  # set by stop_watches: every watch ends

    @property
    def schema_seq(self) -> int:
        """The seq of the schema writes are checked against now: at least that of any
        write already checked, so a write's token may carry it (api/tokens.py)."""
        return self._schemas.seq

    async def _announce(self, tenant: str, revision: Revision) -> None:
        self._resolver.observe(tenant, revision)
        self._wake_watches()

    def _wake_watches(self) -> None:
        woken, self._new_revision = self._new_revision, asyncio.Event()
        woken.set()

    async def write(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        call: CallInfo,
        *,
        preconditions: Sequence[Precondition] = (),
        idempotency_key: str | None = None,
    ) -> Revision:
        started = time.perf_counter()
        if not updates:
            raise InvalidArgument("at least one update is required", field="updates", value=0)
        if len(updates) > self._max_batch:
            raise InvalidArgument(
                f"{len(updates)} updates exceed the limit of {self._max_batch} per call",
                field="updates",
                value=len(updates),
            )
        schema = await self._schemas.require()
        for index, update in enumerate(updates):
            if update.op is not UpdateOp.DELETE:
                check_relationship(schema, update.relationship, f"updates[{index}].relationship")
        revision = await self._store.write(
            tenant,
            updates,
            preconditions=_visible_all(preconditions),
            idempotency_key=idempotency_key,
        )
        if isinstance(revision, ReplayedRevision):
            return revision  # already applied and logged by the first call
        await self._announce(tenant, revision)
        await self._audit.admin(
            tenant,
            call,
            action=methods.WRITE_RELATIONSHIPS,
            resource="relationships",
            revision=revision,
            schema_version=schema.version,
            details={
                "count": len(updates),
                "updates": [f"{u.op.value} {u.relationship}" for u in updates[:_LOGGED_UPDATES]],
                "idempotency_key": idempotency_key,
            },
            started=started,
        )
        return revision

    async def delete(
        self,
        tenant: str,
        flt: RelationshipFilter,
        call: CallInfo,
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, int]:
        started = time.perf_counter()
        if flt == RelationshipFilter():
            raise InvalidArgument(
                "a delete filter needs at least one field (a whole tenant is not deleted)",
                field="filter",
            )
        if flt.resource_type is not None and flt.resource_type.startswith(INTERNAL_PREFIX):
            raise InvalidArgument(
                f"`{echo(flt.resource_type)}` is not a valid type name",
                field="filter.resource_type",
                value=flt.resource_type,
            )
        revision, count = await self._store.delete(
            tenant, _visible(flt), preconditions=_visible_all(preconditions)
        )
        await self._announce(tenant, revision)
        await self._audit.admin(
            tenant,
            call,
            action=methods.DELETE_RELATIONSHIPS,
            resource="relationships",
            revision=revision,
            schema_version=self._schemas.current.version,
            details={"filter": repr(flt), "deleted": count},
            started=started,
        )
        return revision, count

    async def read(
        self,
        tenant: str,
        flt: RelationshipFilter,
        consistency: Consistency,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> tuple[Revision, list[Relationship]]:
        revision = await self._resolver.resolve(tenant, consistency)
        if limit is None:
            found = await self._store.read(tenant, revision, flt, after=after)
            return revision, [r for r in found if not is_internal(r)]
        visible: list[Relationship] = []
        while len(visible) < limit:
            # Internal rows (types `__...`) sort first and are dropped: keep reading so a
            # page is short only at the end, as callers that page expect.
            want = limit - len(visible)
            page = await self._store.read(tenant, revision, flt, limit=want, after=after)
            visible += [r for r in page if not is_internal(r)]
            if len(page) < want:
                break
            after = page[-1]
        return revision, visible

    def reading(self, tenant: str) -> contextlib.AbstractContextManager[None]:
        """Held by a ReadRelationships stream while it is open, as lookups hold theirs:
        one of the tenant's slots (LimitExceeded when none is left)."""
        return self.slots.hold(tenant)

    def watching(self, tenant: str) -> contextlib.AbstractContextManager[None]:
        """Held by a Watch stream while it is open (LimitExceeded past the tenant's or
        the server's limit of open watches)."""
        return self.watches.hold(tenant)

    async def watch_start(
        self, tenant: str, after: Revision | None, schema_seq: int = 0
    ) -> Revision:
        """The revision a Watch streams after: `after`, which must be known and still
        inside the retention window (older history may be collected, so its changes
        could be incomplete: FailedPrecondition), or else the tenant's newest. A token's
        schema position must name a stored schema, as for every read."""
        if schema_seq:
            await self._schemas.at_least(schema_seq)
        if after is None:
            return await self._store.head_revision(tenant)
        await self._store.check_revision(tenant, after)
        return after

    async def stop_watches(self) -> None:
        """End every open watch, now and from now on, with Unavailable: a watch never
        ends by itself, and a stopping server would otherwise wait its whole grace for
        it, then cut it off (CANCELLED, which clients do not resume)."""
        self._stopping = True
        self._wake_watches()

    async def _read_page(
        self, tenant: str, at: tuple[Revision, Relationship | None], done: Revision, page: int
    ) -> tuple[list[Change], Revision]:
        """A watch's page of changes and the head, within the default deadline: a watch
        has none of its own, and a silent database would hold it in a read for good."""
        try:
            with deadline.within(time.monotonic() + self._watch_read):
                found = await self._store.changes_page(tenant, at[0], within=at[1], limit=page + 1)
                return found, await self._store.check_revision(tenant, done)
        except DeadlineExceeded:
            raise Unavailable(
                f"the database did not answer within {self._watch_read:g} s: resume the"
                " watch from its last token"
            ) from None

    async def watch(
        self, tenant: str, after: Revision, *, page: int = 1000
    ) -> AsyncIterator[WatchEvent]:
        """The changes after `after`, forever, in revision order: one event per revision,
        or per page of a revision larger than a page (all its parts but the last are not
        `complete`), so memory stays bounded by a page however large a revision is. A
        resume point is never inside a revision. Wakes at once on local writes and polls
        for writes made by other replicas. After each page read, an event with no
        changes: every change through its revision has been yielded, so a filtered
        watcher can move its resume point past revisions that had nothing for it."""
        done = after  # every change through this revision has been yielded
        at: tuple[Revision, Relationship | None] = (after, None)  # the last change read
        committed = after  # a head read before the latest page: committed by then
        while True:
            if self._stopping:
                raise Unavailable(
                    "the server is shutting down: resume the watch from its last token"
                )
            # Taken before the read: a write announced during it wakes the wait below.
            woken = self._new_revision
            # One change past the page says whether the page's last revision goes on.
            # The page is complete only if `done` is still inside the retention window:
            # collection removes the rows that revisions older than it deleted, and a
            # watch whose reader fell that far behind would never report those deletes.
            # Checked after the read, as the relationship index does (a collection that
            # began before the check cannot have touched the page); such a watch ends.
            found, head = await self._read_page(tenant, at, done, page)
            changes, beyond = found[:page], found[page:]
            for revision, group in itertools.groupby(changes, key=lambda c: c.revision):
                complete = not beyond or beyond[0].revision != revision
                visible = [c for c in group if not is_internal(c.relationship)]
                if not complete:
                    # Progress first: the parts of a revision follow one another with no
                    # progress between them, which would name an earlier revision.
                    yield WatchEvent(done, [])
                if visible:
                    yield WatchEvent(revision, visible, complete)
                if complete:
                    done = revision
            if changes:
                at = (changes[-1].revision, changes[-1].relationship)
                if done == changes[-1].revision:  # else reported before its last part
                    yield WatchEvent(done, [])
            elif committed > done:
                # Revisions that wrote no row (a delete that matched nothing): committed
                # before this page was read, which found nothing after `done`. Reported,
                # so that the watcher's resume point keeps up with the tenant.
                done = committed
                at = (done, None)
                yield WatchEvent(done, [])
            committed = head
            if changes or head > done:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), self._watch_poll)
