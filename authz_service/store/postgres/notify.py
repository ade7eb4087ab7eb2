"""RevisionTracker: each replica's view of every tenant's head, without a round trip.

Every write transaction runs `NOTIFY authz_revisions, '<tenant>:<revision>'`, delivered
when it commits. The tracker LISTENs on one dedicated connection and keeps the highest
revision heard per tenant. `known_head()` also says since when that value is known to be
current, which is what bounded staleness needs:

- on every (re)connection the tracker first LISTENs, then loads every head (so nothing
  committed while it was away is missed), and only then counts as fresh;
- while connected it sends a heartbeat (`SELECT 1`) every `heartbeat_interval`.
  PostgreSQL delivers pending notifications to an idle listening session before it
  reports the heartbeat done, so when the heartbeat sent at time T returns, every write
  committed before T has been heard: all heads are known as of T;
- if the connection drops, the tracker tries to reconnect every `poll_interval`; each
  successful reconnection reloads all heads. Until then, given `store=`, it polls all
  heads through the store's pool every `poll_interval` (the pool may still work when a
  new connection cannot be opened, for example at max_connections); without it, or if
  that fails too, freshness stops advancing and callers fall back to the database.
  With `listen=False` (for example behind a transaction-pooling proxy, which does not
  deliver notifications) it only polls, every `poll_interval`;
- a full reload every `resync_interval` guards against anything missed.

A purge (a deleted tenant) is announced on a channel of its own; the tracker learns its
head and tells the callbacks given to `on_purge`, so that every process forgets the
revision it pinned and the "found lately" of that tenant: the old tenant's revisions
and cached decisions must not answer for it, or for a tenant created again under its
name. A reload that finds a tenant deleted it had not heard of does the same (a purge
announced while the tracker was away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg

from authz_service.errors import AuthzError
from authz_service.model import Revision
from authz_service.store.postgres.store import PostgresStore
from authz_service.store.postgres.writes import CHANNEL, PURGE_CHANNEL

__all__ = ["APPLICATION_NAME", "RevisionTracker"]

APPLICATION_NAME = "authz-revision-tracker"  # how operators spot it in pg_stat_activity

logger = logging.getLogger("authz_service.store.postgres.notify")

_ALL_HEADS = "SELECT tenant, head, state = 'deleted' AS deleted FROM tenants"


class RevisionTracker:
    """Latest known head per tenant. Start with `await start()`, stop with `aclose()`."""

    def __init__(
        self,
        dsn: str,
        *,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 0.2,
        resync_interval: float = 60.0,
        listen: bool = True,
        connect_timeout: float = 5.0,
        store: PostgresStore | None = None,
    ) -> None:
        self._dsn = dsn
        self._store = store
        self._poll_interval = poll_interval
        self._heartbeat_interval = heartbeat_interval
        self._resync_interval = resync_interval
        self._listen = listen
        self._connect_timeout = connect_timeout
        self._heads: dict[str, tuple[Revision, float]] = {}
        self._fresh_at: float | None = None  # every head known as of this monotonic time
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._purge_callbacks: list[Callable[[str], None]] = []
        self._deleted: set[str] = set()  # tenants known to be deleted

    async def start(self, *, wait: float | None = None) -> bool:
        """Start tracking; wait up to `wait` seconds (default: the connect timeout) for
        the first load. Returns whether it completed; if not, the tracker keeps trying
        in the background and `known_head` answers None until it does."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="authz-revision-tracker")
        timeout = self._connect_timeout if wait is None else wait
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout)
        return self._synced.is_set()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def known_head(self, tenant: str) -> tuple[Revision, float] | None:
        """(head, monotonic time at which it was known to be the head), or None before the
        first successful load. A tenant that never wrote has head 0."""
        entry = self._heads.get(tenant)
        if self._fresh_at is None:
            return entry
        if entry is None:
            return (0, self._fresh_at)
        return (entry[0], max(entry[1], self._fresh_at))

    def on_purge(self, callback: Callable[[str], None]) -> None:
        """Call `callback(tenant)` whenever a tenant is heard to have been purged."""
        self._purge_callbacks.append(callback)

    def _purged(self, tenant: str) -> None:
        self._deleted.add(tenant)
        for callback in self._purge_callbacks:
            try:
                callback(tenant)
            except Exception:  # one failing callback must not keep the others from forgetting
                logger.exception("a purge callback failed for tenant %s", tenant)

    def _learn(self, tenant: str, revision: Revision, at: float) -> None:
        current = self._heads.get(tenant)
        if current is None or revision > current[0]:
            self._heads[tenant] = (revision, at)

    def _on_notify(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        tenant, _, raw = str(payload).rpartition(":")
        try:
            revision = int(raw)
        except ValueError:
            logger.warning("ignoring malformed revision notification %r", payload)
            return
        self._learn(tenant, revision, time.monotonic())
        if channel == PURGE_CHANNEL:
            self._purged(tenant)
        else:
            self._deleted.discard(tenant)  # written again: created again

    async def _load_all(self, conn: asyncpg.Connection) -> None:
        sent = time.monotonic()
        rows = await asyncio.wait_for(conn.fetch(_ALL_HEADS), self._connect_timeout)
        self._merge(rows, sent)

    def _merge(self, rows: list[asyncpg.Record], sent: float) -> None:
        for row in rows:
            tenant = row["tenant"]
            self._learn(tenant, int(row["head"]), sent)
            if not row["deleted"]:
                self._deleted.discard(tenant)
            elif tenant not in self._deleted:
                self._purged(tenant)
        self._fresh_at = sent
        self._synced.set()

    async def _serve(self, conn: asyncpg.Connection) -> None:
        """Keep one connection fresh until it fails."""
        if self._listen:
            await conn.add_listener(CHANNEL, self._on_notify)
            await conn.add_listener(PURGE_CHANNEL, self._on_notify)
        await self._load_all(conn)
        last_load = time.monotonic()
        while True:
            if not self._listen:
                await asyncio.sleep(self._poll_interval)
                await self._load_all(conn)
                continue
            await asyncio.sleep(self._heartbeat_interval)
            if time.monotonic() - last_load >= self._resync_interval:
                await self._load_all(conn)
                last_load = time.monotonic()
                continue
            sent = time.monotonic()
            await asyncio.wait_for(conn.fetchval("SELECT 1"), self._connect_timeout)
            self._fresh_at = sent

    async def _run(self) -> None:
        while True:
            try:
                self._conn = await asyncpg.connect(
                    self._dsn,
                    timeout=self._connect_timeout,
                    server_settings={"application_name": APPLICATION_NAME},
                )
                await self._serve(self._conn)
            except Exception as exc:  # the tracker must outlive any failure
                # Not only connection errors: a heartbeat cancelled by its timeout while the
                # server shuts down leaves asyncpg's protocol busy, and the next call raises
                # InternalClientError. A tracker task that died would never learn a head
                # again (readers would fall back to a round trip per call, forever).
                logger.warning(
                    "revision tracker lost the database (%s: %s); retrying every %.1fs",
                    type(exc).__name__,
                    exc,
                    self._poll_interval,
                )
            finally:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.terminate()
            await self._poll_through_store()
            await asyncio.sleep(self._poll_interval)

    async def _poll_through_store(self) -> None:
        if self._store is None:
            return
        sent = time.monotonic()
        try:
            rows = await self._store.db.fetch(_ALL_HEADS)
            self._merge(rows, sent)
        except AuthzError:
            return  # the database is down for the pool too: let freshness age
        except Exception:  # as in `_run`: the tracker must outlive any failure
            logger.exception("revision tracker could not poll through the store")
