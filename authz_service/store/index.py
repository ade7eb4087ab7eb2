"""IndexedStore: any Store, with relationship reads answered from process memory.

An uncached Check asks the store one question per subproblem (7 for a 3-level nested
group, ~25 for a denial that explores every branch). Against PostgreSQL each is a round
trip awaited after the one before; here each is a dictionary lookup. Everything except
`read` goes to the wrapped store unchanged.

Per tenant, on its first read (the read itself goes to the store):

- load: the live relationships at the head R0, paged through the store's own `read` at
  that fixed revision (MVCC: concurrent writes do not disturb it), in the background;
  reads keep going to the store until it completes. The index then answers revisions
  >= R0 (`floor`);
- follow: a read at a revision newer than everything applied first fetches the head and
  then the changes after the applied revision (the same `changes` Watch uses). Writes
  commit in revision order, so once a complete page of changes has been read after the
  head, every change up to that head is known: `applied` moves to it. Concurrent readers
  share one catch-up per tenant. A revision beyond the head (not yet committed, or
  invalid) is never marked applied: such reads go to the store;
- bound: rows held across tenants never exceed `max_rows`. A tenant whose load or whose
  changes would pass it is dropped and read from the store from then on; deleted rows
  (kept so that slightly older revisions still read exactly) are dropped once they
  outnumber a quarter of the live ones, which raises that tenant's floor. The drop runs
  in a task of its own, a few thousand rows per turn of the event loop (at a million
  rows it is a walk of over a second), so it stalls neither the tenant's readers nor any
  other tenant's requests.

So a read is answered here only at a revision whose every change has been applied, and
gives exactly the rows the store would give, in the same order (tests/store run the
contract suite and generated worlds against both).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from authz_service import deadline
from authz_service.errors import AuthzError, FailedPrecondition
from authz_service.model import (
    Relationship,
    RelationshipFilter,
    RelationshipKind,
    RelationshipUpdate,
    Revision,
)
from authz_service.store.index_tenant import TenantIndex
from authz_service.store.protocol import (
    Change,
    KeyStore,
    Precondition,
    SchemaRecord,
    Store,
    WholeResources,
)
from authz_service.store.registry import TenantRegistry
from authz_service.store.scim import ScimRecords
from authz_service.store.service_accounts import ServiceAccounts

__all__ = ["IndexStats", "IndexedStore"]

logger = logging.getLogger("authz_service.store.index")

# A page is decoded and converted on the event loop; 1,000 rows keep that to a couple
# of milliseconds (with 5,000 a lag probe at 1M saw every worker's loop stall for 15 ms
# and more, docs/performance.md "Load without stalls").
_LOAD_PAGE = 1_000
_ADD_STEP = 250  # rows indexed between two turns of the event loop
_CHANGES_PAGE = 1_000
_RETRY_AFTER_S = 30.0  # a tenant whose load failed or did not fit is retried this late
_EVERYTHING = RelationshipFilter()
# A load or a catch-up serves no one call (readers share it), so no call's deadline
# bounds it; each of its reads gets this long instead. A read lost to a database that
# stopped answering then ends (DeadlineExceeded: the work stops, and the next reader
# starts it again) instead of holding every later reader of the tenant for good.
_STORE_READ_S = 5.0


@dataclass(frozen=True, slots=True)
class IndexStats:
    tenants: int  # tenants answered from memory
    rows: int  # rows held, live and deleted
    max_rows: int
    memory_reads: int
    store_reads: int


class IndexedStore:
    """Implements `authz_service.store.protocol.Store` over `store`."""

    def __init__(self, store: Store, *, max_rows: int, load_inline: bool = False) -> None:
        """`load_inline`: the first read of a tenant waits for its load instead of going
        to the store meanwhile (for tests, and deployments of small tenants)."""
        self._store = store
        self.max_rows = max_rows
        self._load_inline = load_inline
        self._tenants: dict[str, TenantIndex] = {}
        self._loading: dict[str, asyncio.Task[None]] = {}
        self._refused: dict[str, float] = {}  # tenant -> monotonic time of the refusal
        self._catch_ups: dict[str, asyncio.Task[None]] = {}
        self._trims: dict[str, asyncio.Task[None]] = {}
        self._memory_reads = 0
        self._store_reads = 0

    @property
    def keys(self) -> KeyStore:
        return self._store.keys

    @property
    def tenants(self) -> TenantRegistry:
        return _IndexedTenants(self._store.tenants, self._tenants)

    @property
    def scim(self) -> ScimRecords:
        return self._store.scim

    @property
    def service_accounts(self) -> ServiceAccounts:
        return self._store.service_accounts

    @property
    def inner(self) -> Store:
        return self._store

    def stats(self) -> IndexStats:
        rows = sum(t.rows for t in self._tenants.values())
        return IndexStats(
            len(self._tenants), rows, self.max_rows, self._memory_reads, self._store_reads
        )

    def applied(self, tenant: str) -> Revision | None:
        """The newest revision answered from memory for `tenant`, None if not indexed."""
        index = self._tenants.get(tenant)
        return index.applied if index is not None else None

    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> list[Relationship]:
        index = self._tenants.get(tenant)
        if index is None and self._load_inline:
            await self.wait_loaded(tenant)
            index = self._tenants.get(tenant)
        if index is None:
            self._start_load(tenant)
        else:
            if revision > index.applied:
                index = await self._catch_up(tenant, revision)
            if index is not None and index.floor <= revision <= index.applied:
                found = index.scan(revision, flt, limit, after)
                if found is not None:
                    self._memory_reads += 1
                    return found
        self._store_reads += 1
        return await self._store.read(tenant, revision, flt, limit=limit, after=after)

    async def wait_loaded(self, tenant: str) -> bool:
        """Start loading `tenant` if needed and wait for it; whether it is indexed."""
        self._start_load(tenant)
        task = self._loading.get(tenant)
        if task is not None:
            await asyncio.shield(task)
        return tenant in self._tenants

    # --- loading and following ------------------------------------------------------------

    def _used(self) -> int:
        return sum(t.rows for t in self._tenants.values())

    def _start_load(self, tenant: str) -> None:
        if tenant in self._tenants or tenant in self._loading:
            return
        refused = self._refused.get(tenant)
        if refused is not None and time.monotonic() - refused < _RETRY_AFTER_S:
            return
        with deadline.cleared():  # the load outlives the read that asked for it
            task = asyncio.create_task(self._load(tenant), name=f"authz-index-load-{tenant}")
        self._loading[tenant] = task
        task.add_done_callback(lambda _t: self._loading.pop(tenant, None))

    async def _load(self, tenant: str) -> None:
        try:
            with _bounded():
                head = await self._store.head_revision(tenant)
            index = TenantIndex(floor=head, applied=head)
            budget = self.max_rows - self._used()
            last: Relationship | None = None
            while True:
                with _bounded():
                    page = await self._store.read(
                        tenant, head, _EVERYTHING, limit=_LOAD_PAGE, after=last
                    )
                # On the event loop in small steps, not in a thread: the index is not
                # published yet, so nothing else touches it, and a thread adding rows
                # held the GIL for a switch interval (5 ms) each time the loop let go
                # of it, so every request of every tenant in this worker waited.
                for i in range(0, len(page), _ADD_STEP):
                    index.add(page[i : i + _ADD_STEP], head)
                    await asyncio.sleep(0)
                # Keep the cycle collector from walking the rows loaded so far again
                # and again (full collections of millions of objects paused every
                # request for seconds). Index rows form no cycles, so rows dropped
                # later are still freed, by reference counting.
                gc.freeze()
                if index.rows > budget:
                    self._refuse(tenant, f"more than {budget} rows fit")
                    return
                if len(page) < _LOAD_PAGE:
                    break
                last = page[-1]
        except AuthzError as exc:
            self._refuse(tenant, f"load failed: {exc}")
            return
        if index.rows <= self.max_rows - self._used():
            self._tenants[tenant] = index
            logger.info("indexed tenant %s: %d relationships at %d", tenant, index.rows, head)
        else:
            self._refuse(tenant, "other tenants filled the index meanwhile")

    def _refuse(self, tenant: str, why: str) -> None:
        logger.info("tenant %s is read from the store: %s", tenant, why)
        self._tenants.pop(tenant, None)
        self._refused[tenant] = time.monotonic()

    async def _catch_up(self, tenant: str, revision: Revision) -> TenantIndex | None:
        """Apply changes until `revision` is covered, if it is committed; returns the
        tenant's index (None if it was dropped meanwhile)."""
        for _ in range(2):  # a catch-up already running may have started before `revision`
            index = self._tenants.get(tenant)
            if index is None or revision <= index.applied:
                return index
            task = self._catch_ups.get(tenant)
            if task is None:
                with deadline.cleared():  # shared by readers, each with its own deadline
                    task = asyncio.create_task(self._follow(tenant, index))
                self._catch_ups[tenant] = task
                task.add_done_callback(lambda _t: self._catch_ups.pop(tenant, None))
            await asyncio.shield(task)
        return self._tenants.get(tenant)

    async def _follow(self, tenant: str, index: TenantIndex) -> None:
        try:
            with _bounded():
                head = await self._store.head_revision(tenant)
            while True:
                with _bounded():
                    page = await self._store.changes(tenant, index.applied, limit=_CHANGES_PAGE)
                if self._tenants.get(tenant) is not index:
                    return
                if not await self._history_kept(tenant, index.applied):
                    return
                complete = len(page) < _CHANGES_PAGE
                last = page[-1].revision if page else index.applied
                index.apply(page, max(head, last) if complete else last)
                if index.dead > max(1_024, (index.rows - index.dead) // 4):
                    self._start_trim(tenant, index)
                if self._used() > self.max_rows:
                    self._refuse(tenant, "its changes passed the row limit")
                    return
                if complete:
                    return
        except AuthzError as exc:
            # Reads stay correct: whatever is not applied is read from the store.
            logger.warning("index of tenant %s could not follow changes: %s", tenant, exc)

    def _start_trim(self, tenant: str, index: TenantIndex) -> None:
        """Drop the tenant's deleted rows in a task of their own, in steps: neither the
        catch-up that readers wait for nor the event loop is held for the whole walk."""
        if tenant in self._trims:
            return
        with deadline.cleared():  # not bound by the deadline of the read that caught up
            task = asyncio.create_task(self._trim(tenant, index))
        self._trims[tenant] = task
        task.add_done_callback(lambda _t: self._trims.pop(tenant, None))

    async def _trim(self, tenant: str, index: TenantIndex) -> None:
        for _ in index.trim_steps():
            await asyncio.sleep(0)  # requests run between steps
            if self._tenants.get(tenant) is not index:
                return  # dropped or reloaded meanwhile

    async def _history_kept(self, tenant: str, applied: Revision) -> bool:
        """Whether the changes just read after `applied` are complete. Garbage collection
        removes rows deleted by revisions older than the retention window, and such a
        delete never shows in the change feed: an index that fell that far behind would
        keep serving the deleted row. Checked after reading the changes, so that a
        collection that started before the check cannot have touched them (its cutoff is
        older than the one checked). A tenant that fell behind is dropped and reloaded."""
        try:
            with _bounded():
                await self._store.check_revision(tenant, applied)
        except FailedPrecondition:
            logger.info("index of tenant %s fell behind the retention window: reloading", tenant)
            self._tenants.pop(tenant, None)
            return False
        return True

    # --- everything else is the wrapped store's ------------------------------------------

    async def write(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        *,
        preconditions: Sequence[Precondition] = (),
        idempotency_key: str | None = None,
    ) -> Revision:
        return await self._store.write(
            tenant, updates, preconditions=preconditions, idempotency_key=idempotency_key
        )

    async def delete(
        self,
        tenant: str,
        flt: RelationshipFilter,
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, int]:
        return await self._store.delete(tenant, flt, preconditions=preconditions)

    async def apply(
        self,
        tenant: str,
        updates: Sequence[RelationshipUpdate],
        deletes: Sequence[RelationshipFilter | WholeResources] = (),
        *,
        preconditions: Sequence[Precondition] = (),
    ) -> tuple[Revision, list[Relationship]]:
        return await self._store.apply(tenant, updates, deletes, preconditions=preconditions)

    async def head_revision(self, tenant: str) -> Revision:
        return await self._store.head_revision(tenant)

    async def heads(self, tenant: str) -> tuple[Revision, int]:
        return await self._store.heads(tenant)

    async def check_revision(self, tenant: str, revision: Revision) -> Revision:
        return await self._store.check_revision(tenant, revision)

    async def changes(self, tenant: str, after: Revision, *, limit: int = 1000) -> list[Change]:
        return await self._store.changes(tenant, after, limit=limit)

    async def changes_page(
        self, tenant: str, after: Revision, *, within: Relationship | None = None, limit: int
    ) -> list[Change]:
        return await self._store.changes_page(tenant, after, within=within, limit=limit)

    async def write_schema(self, version: str, text: str) -> SchemaRecord:
        return await self._store.write_schema(version, text)

    async def read_schema(self, version: str | None = None) -> SchemaRecord | None:
        return await self._store.read_schema(version)

    async def relationship_kinds(self) -> set[RelationshipKind]:
        return await self._store.relationship_kinds()

    async def role_grants(self) -> dict[str, tuple[str, str]]:
        return await self._store.role_grants()

    async def stop(self) -> None:
        """Stop loading and following (the wrapped store stays open)."""
        tasks = [*self._loading.values(), *self._catch_ups.values(), *self._trims.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.stop()
        await self._store.close()


class _IndexedTenants:
    """The wrapped store's registry; a purge also drops the tenant's index here (other
    replicas find the purged history gone and reload, see PostgresTenants.purge)."""

    def __init__(self, registry: TenantRegistry, indexes: dict[str, TenantIndex]) -> None:
        self._registry = registry
        self._indexes = indexes
        self.create = registry.create
        self.get = registry.get
        self.list = registry.list
        self.set_state = registry.set_state

    async def purge(self, name: str) -> None:
        await self._registry.purge(name)
        self._indexes.pop(name, None)


def _bounded() -> AbstractContextManager[None]:
    """The bound of one read of a load or a catch-up (`_STORE_READ_S`)."""
    return deadline.within(time.monotonic() + _STORE_READ_S)
