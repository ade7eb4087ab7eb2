"""Read replicas: PostgreSQL hot standbys that answer relationship reads.

Only `read(tenant, revision, ...)` goes to a replica. Writes, heads, the change feed
(Watch and the in-memory index's catch-up), retention checks, schemas, keys and tenants
stay on the primary. The engine always reads at an explicit revision chosen from the
primary's knowledge (a token, a known head), and a read at revision R is exact on any
server that has replayed R's commit, so routing needs nothing more from the request:

- a replica is tried only while its monitor counts it usable: reachable, still a
  standby, and no more than `max_lag_s` behind the primary (round robin among those);
- the read checks, in the same statement and so the same snapshot, that the replica
  holds R (`reads.read_if_replayed`); if it does not, the primary answers. A replica
  that lags, however briefly and whatever the monitor last saw, is never read stale;
- a replica that fails in any way (down, refusing logins, without the database, a
  conflict with recovery, no free connection, or no answer within half of the call's
  remaining time) is marked unusable until its next good probe, and the primary answers.

Lag: each probe samples the primary's flushed WAL position at time t and every
replica's replayed position. A replica that has replayed past the sample of time t
holds every commit acknowledged before t; its lag is the age of the newest such t. A
replica paused or cut off stops replaying, its lag grows with every probe, and past
`max_lag_s` it is skipped without a round trip. A primary position that goes back is a
new primary (a failover): the old one's samples are dropped. A replica that had replayed
more than the primary has flushed since is on another history, and is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from authz_service import deadline
from authz_service.errors import DeadlineExceeded, InvalidArgument
from authz_service.model import Relationship, RelationshipFilter, Revision
from authz_service.store.postgres import reads
from authz_service.store.postgres.db import Database
from authz_service.store.postgres.dberrors import OUT_OF_TIME

if TYPE_CHECKING:
    import asyncpg

    Pool = asyncpg.Pool[asyncpg.Record]

__all__ = ["ReplicaSet", "ReplicaStats", "replica_name"]

logger = logging.getLogger("authz_service.store.postgres.replicas")

PRIMARY_SQL = "SELECT pg_current_wal_flush_lsn()::text"
REPLICA_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
_SAMPLES = 1_000  # primary positions a replica has yet to reach; older ones are dropped


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    name: str
    usable: bool
    lag_s: float | None  # None: never seen replaying
    reads: int  # answered by the replica
    behind: int  # tried, had not replayed the revision: answered by the primary
    errors: int  # failed: answered by the primary


def replica_name(dsn: str, position: int) -> str:
    """How logs and metrics name a replica: host:port/database, never its credentials."""
    try:
        parts = urlsplit(dsn)
        if parts.hostname:
            return f"{parts.hostname}:{parts.port or 5432}{parts.path}"
    except ValueError:
        pass
    return f"replica-{position}"


def _reason(exc: BaseException) -> str:
    """What went wrong, for the log, never empty: the driver's error under the store's
    own (`translated()` keeps it as the cause)."""
    cause = exc.__cause__ or exc
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _lsn(text: str | None) -> int | None:
    if text is None:
        return None
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


class _Replica:
    def __init__(self, name: str, dsn: str) -> None:
        self.name = name
        self.dsn = dsn
        self.db: Database | None = None
        self.usable: bool | None = None  # None: not probed yet, so the first probe is logged
        self.fresh_at: float | None = None  # every commit acknowledged before it replayed
        self.replayed: int | None = None  # its position at the last probe that found it a standby
        self.pending: deque[tuple[float, int]] = deque(maxlen=_SAMPLES)
        self.reads = 0
        self.behind = 0
        self.errors = 0

    def lag(self, now: float) -> float | None:
        return None if self.fresh_at is None else now - self.fresh_at

    def mark(self, usable: bool, why: str = "") -> None:
        """Changes of state are logged; the same state again only at DEBUG, so that a
        replica that stays down does not fill the log at every probe."""
        if usable and self.usable is not True:
            logger.info("replica %s serves reads", self.name)
        elif not usable and self.usable is not False:
            logger.warning("replica %s skipped, reads go to the primary: %s", self.name, why)
        elif not usable:
            logger.debug("replica %s still skipped: %s", self.name, why)
        self.usable = usable


class ReplicaSet:
    """The replicas of one primary. `start()` probes them once and starts the monitor;
    `aclose()` stops it and closes their pools."""

    def __init__(
        self,
        primary: Database,
        dsns: Sequence[str],
        open_pool: Callable[[str], Awaitable[Pool]],
        *,
        max_lag_s: float = 1.0,
        probe_interval_s: float = 0.1,
        timeout_s: float = 1.0,
    ) -> None:
        """`open_pool(dsn)` must not connect (min_size 0): a replica down at start is
        only unusable. `timeout_s` bounds each probe and each wait for a replica's
        connection, so a replica behind a silent network costs a read that much at most
        once, before the read marks it unusable."""
        self._primary = primary
        self._replicas = [_Replica(replica_name(d, i), d) for i, d in enumerate(dsns)]
        self._open_pool = open_pool
        self._max_lag = max_lag_s
        self._interval = probe_interval_s
        self._timeout = timeout_s
        self._next = 0
        self._flushed: int | None = None  # the primary's position at the last sample
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.probe()
        if self._task is None:
            with deadline.cleared():  # the monitor outlives whatever call opened the store
                self._task = asyncio.create_task(self._monitor(), name="authz-replica-monitor")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for replica in self._replicas:
            db, replica.db = replica.db, None
            if db is not None:
                await db.close()

    def stats(self) -> list[ReplicaStats]:
        now = time.monotonic()
        return [
            ReplicaStats(r.name, r.usable is True, r.lag(now), r.reads, r.behind, r.errors)
            for r in self._replicas
        ]

    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None,
        after: Relationship | None,
    ) -> list[Relationship] | None:
        """The rows from a usable replica that holds `revision`, or None: read the primary."""
        replica = self._pick()
        if replica is None or replica.db is None:
            return None
        # In a call, the replica gets half of the time left: a replica behind a network
        # that silently drops packets must leave the primary time to answer.
        left = deadline.remaining()
        given = None if left is None else left / 2
        try:
            with deadline.within(None if given is None else time.monotonic() + given):
                found = await reads.read_if_replayed(
                    replica.db, tenant, revision, flt, limit=limit, after=after
                )
        except InvalidArgument:
            raise  # a value the database refuses (a NUL character): so would the primary
        except Exception as exc:  # whatever the driver calls it, a replica's failure
            if deadline.remaining() == 0:
                # The call ran out of time, not necessarily by the replica's fault.
                if isinstance(exc, DeadlineExceeded):
                    raise
                raise DeadlineExceeded(OUT_OF_TIME) from exc
            if isinstance(exc, DeadlineExceeded) and given is not None:
                if given < self._timeout:
                    return None  # too little time to blame the replica: the primary answers
                why = f"read got no answer within {given:.1f}s"
            else:
                why = f"read failed: {_reason(exc)}"
            replica.errors += 1
            replica.mark(False, why)
            return None
        if found is None:
            replica.behind += 1
            return None
        replica.reads += 1
        return found

    def _pick(self) -> _Replica | None:
        count = len(self._replicas)
        for step in range(count):
            replica = self._replicas[(self._next + step) % count]
            if replica.usable:
                self._next = (self._next + step + 1) % count
                return replica
        return None

    # --- the monitor -----------------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.probe()
            except Exception:  # the monitor must outlive any failure
                logger.exception("replica monitor failed; retrying")

    async def probe(self) -> None:
        """Sample the primary's position, then every replica's (one round). Rounds
        follow one another (`start`, then the monitor): a round's primary sample must
        come after the previous round's replica positions."""
        sent = time.monotonic()
        flushed = await self._sample_primary()
        await asyncio.gather(*(self._probe(r, sent, flushed) for r in self._replicas))

    async def _sample_primary(self) -> int | None:
        """The primary's flushed position, or None when it does not answer: the replicas'
        lag then grows until it does (they are still probed, so that their state follows
        theirs)."""
        try:
            flushed = _lsn(
                await asyncio.wait_for(self._primary.fetchval(PRIMARY_SQL), self._timeout)
            )
        except Exception as exc:
            logger.debug("primary not sampled: %s", _reason(exc))
            return None
        if flushed is not None and self._flushed is not None and flushed < self._flushed:
            # A primary's position never goes back: another server answers at its address
            # (a failover). The old one's positions, which the new one may be far from
            # reaching, would keep its standbys unusable: measure them afresh.
            logger.warning(
                "the primary's WAL position went back (a failover?): replica lag is measured"
                " against the new primary from now on"
            )
            for replica in self._replicas:
                replica.pending.clear()
        self._flushed = flushed
        return flushed

    async def _probe(self, replica: _Replica, sent: float, flushed: int | None) -> None:
        # A standby of this primary has only what the primary had flushed when it was
        # sent: by the next sample, the primary has flushed at least what the standby had
        # replayed. One that had replayed more follows another history: a standby of an
        # old primary, past the point where the new one's history forked off (a failover
        # that lost writes). Its rows may hold those writes, under revision numbers the
        # new primary gives to others: its tenant heads prove nothing, never read it.
        ahead = flushed is not None and (replica.replayed or 0) > flushed
        replica.replayed = None
        if flushed is not None:
            replica.pending.append((sent, flushed))
        try:
            if replica.db is None:
                pool = await self._open_pool(replica.dsn)
                # Its outages are told by `mark` once, not by the store at every attempt.
                replica.db = Database(
                    pool, acquire_timeout=self._timeout, outage_log_level=logging.DEBUG
                )
            row = await asyncio.wait_for(replica.db.fetchrow(REPLICA_SQL), self._timeout)
        except TimeoutError:
            replica.mark(False, f"probe got no answer within {self._timeout:g}s")
            return
        except Exception as exc:  # refused, no such database, down: skipped alike
            replica.mark(False, f"probe failed: {_reason(exc)}")
            return
        assert row is not None  # a SELECT without FROM always yields one row
        standby, replayed = bool(row[0]), _lsn(row[1])
        if not standby or replayed is None:
            # A promoted replica has a history of its own: never read it.
            replica.mark(False, "not a streaming standby")
            return
        replica.replayed = replayed
        if ahead:
            # Nothing it holds vouches for it, not even positions of this primary that it
            # passed: only replaying what this primary flushes later would.
            replica.fresh_at = None
            while replica.pending and replica.pending[0][1] <= replayed:
                replica.pending.popleft()
            replica.mark(False, "had replayed WAL the primary has not: a standby of another")
            return
        while replica.pending and replica.pending[0][1] <= replayed:
            replica.fresh_at = replica.pending.popleft()[0]
        lag = replica.lag(time.monotonic())
        if lag is None or lag > self._max_lag:
            replica.mark(False, f"more than {self._max_lag:g}s behind the primary")
        else:
            replica.mark(True)
