"""Metrics read at scrape time from the stats functions of the cache, log and pool.

Nothing is recorded on the hot path for these: the owners already keep counters, and
the collector turns a snapshot of them into metric families when Prometheus scrapes.
Scrapes are served on the event loop (see `endpoint`), so the stats functions run on
the thread that owns the counters. The shapes are protocols so that this package does
not import the cache or the decision log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "CacheStatsLike",
    "CallbackCollector",
    "IndexStatsLike",
    "LogStatsLike",
    "PoolStats",
    "ReplicaStatsLike",
    "StatsFn",
]

log = logging.getLogger(__name__)

T_co = TypeVar("T_co", covariant=True)
StatsFn = Callable[[], T_co]


class CacheStatsLike(Protocol):
    """What `DecisionCache.stats()` returns."""

    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def evictions(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def maxsize(self) -> int: ...


class LogStatsLike(Protocol):
    """What `DecisionLogWriter.stats()` returns."""

    @property
    def queued(self) -> int: ...
    @property
    def appended(self) -> int: ...
    @property
    def written(self) -> int: ...
    @property
    def batches(self) -> int: ...
    @property
    def fsyncs(self) -> int: ...
    @property
    def fsync_seconds_last(self) -> float: ...
    @property
    def fsync_seconds_avg(self) -> float: ...
    @property
    def checkpoints(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def mirror_errors(self) -> int: ...


class IndexStatsLike(Protocol):
    """What `IndexedStore.stats()` returns."""

    @property
    def tenants(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def max_rows(self) -> int: ...
    @property
    def memory_reads(self) -> int: ...
    @property
    def store_reads(self) -> int: ...


class ReplicaStatsLike(Protocol):
    """What `PostgresStore.replica_stats()` returns, per read replica."""

    @property
    def name(self) -> str: ...
    @property
    def usable(self) -> bool: ...
    @property
    def lag_s(self) -> float | None: ...
    @property
    def reads(self) -> int: ...
    @property
    def behind(self) -> int: ...
    @property
    def errors(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A database pool's connections; with asyncpg:
    `PoolStats(pool.get_size(), pool.get_idle_size(), pool.get_max_size())`."""

    size: int
    free: int
    max_size: int


def _counter(name: str, doc: str, value: float) -> Metric:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


def _cache_metrics(s: CacheStatsLike) -> Iterator[Metric]:
    yield _counter("authz_cache_hits", "Decision cache lookups that found an entry.", s.hits)
    yield _counter("authz_cache_misses", "Decision cache lookups that found none.", s.misses)
    yield _counter("authz_cache_evictions", "Entries evicted to make room.", s.evictions)
    yield _gauge("authz_cache_entries", "Entries in the decision cache.", s.size)
    yield _gauge("authz_cache_capacity", "Maximum entries in the decision cache.", s.maxsize)


def _log_metrics(s: LogStatsLike) -> Iterator[Metric]:
    p = "authz_decision_log_"
    yield _gauge(p + "queue_depth", "Records accepted but not yet written.", s.queued)
    yield _counter(p + "appended", "Records accepted.", s.appended)
    yield _counter(p + "records_written", "Records written and fsync'd.", s.written)
    yield _counter(p + "batches", "Write+fsync rounds.", s.batches)
    yield _counter(p + "fsyncs", "fsync calls on segment files.", s.fsyncs)
    # rate(..._fsync_seconds_total) / rate(..._batches_total) is the mean round time.
    yield _counter(
        p + "fsync_seconds",
        "Wall time spent in write+fsync rounds.",
        s.fsync_seconds_avg * s.batches,
    )
    yield _gauge(
        p + "fsync_seconds_last", "Wall time of the last write+fsync round.", s.fsync_seconds_last
    )
    yield _counter(p + "checkpoints", "Signed checkpoints written.", s.checkpoints)
    yield _counter(p + "rejected", "Appends refused because the buffer was full.", s.rejected)
    yield _counter(p + "dropped", "Accepted records never written (disk failure).", s.dropped)
    yield _counter(p + "mirror_errors", "Failed writes to the log mirror.", s.mirror_errors)


def _index_metrics(s: IndexStatsLike) -> Iterator[Metric]:
    p = "authz_index_"
    yield _gauge(p + "tenants", "Tenants whose relationships are held in memory.", s.tenants)
    yield _gauge(p + "rows", "Relationships held in memory, live and deleted.", s.rows)
    yield _gauge(p + "capacity_rows", "Maximum relationships held in memory.", s.max_rows)
    yield _counter(p + "memory_reads", "Relationship reads answered from memory.", s.memory_reads)
    yield _counter(p + "store_reads", "Relationship reads sent to the database.", s.store_reads)


def _pool_metrics(s: PoolStats) -> Iterator[Metric]:
    yield _gauge("authz_db_pool_connections", "Open connections in the database pool.", s.size)
    yield _gauge("authz_db_pool_free_connections", "Open connections not in use.", s.free)
    yield _gauge("authz_db_pool_max_connections", "Maximum connections in the pool.", s.max_size)


def _replica_metrics(replicas: Sequence[ReplicaStatsLike]) -> Iterator[Metric]:
    p, labels = "authz_replica_", ["replica"]
    usable = GaugeMetricFamily(p + "usable", "1 while the read replica is tried.", labels=labels)
    lag = GaugeMetricFamily(
        p + "lag_seconds", "How far the replica's replay is behind the primary.", labels=labels
    )
    reads = CounterMetricFamily(p + "reads", "Reads answered by the replica.", labels=labels)
    behind = CounterMetricFamily(
        p + "not_replayed",
        "Reads the replica had not replayed yet, answered by the primary.",
        labels=labels,
    )
    errors = CounterMetricFamily(
        p + "errors", "Reads the replica failed, answered by the primary.", labels=labels
    )
    for r in replicas:
        usable.add_metric([r.name], 1 if r.usable else 0)
        if r.lag_s is not None:  # never seen replaying: no figure rather than a made-up one
            lag.add_metric([r.name], r.lag_s)
        reads.add_metric([r.name], r.reads)
        behind.add_metric([r.name], r.behind)
        errors.add_metric([r.name], r.errors)
    yield from (usable, lag, reads, behind, errors)


class CallbackCollector(Collector):
    """Calls the registered stats functions on each scrape; a failing one is skipped."""

    def __init__(self) -> None:
        self.cache: StatsFn[CacheStatsLike] | None = None
        self.log: StatsFn[LogStatsLike] | None = None
        self.pool: StatsFn[PoolStats] | None = None
        self.index: StatsFn[IndexStatsLike] | None = None
        self.replicas: StatsFn[Sequence[ReplicaStatsLike]] | None = None

    def describe(self) -> list[Metric]:
        # Names depend on what is registered later; an empty description keeps the
        # registry from calling collect() (and the stats functions) at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        if self.cache is not None:
            yield from self._safely("cache", self.cache, _cache_metrics)
        if self.log is not None:
            yield from self._safely("decision log", self.log, _log_metrics)
        if self.pool is not None:
            yield from self._safely("database pool", self.pool, _pool_metrics)
        if self.index is not None:
            yield from self._safely("relationship index", self.index, _index_metrics)
        if self.replicas is not None:
            yield from self._safely("read replica", self.replicas, _replica_metrics)

    @staticmethod
    def _safely(
        what: str, stats: StatsFn[T_co], families: Callable[[T_co], Iterator[Metric]]
    ) -> Iterator[Metric]:
        # One broken stats function must not cost the operator every other metric.
        try:
            snapshot = stats()
        except Exception:
            log.exception("reading %s stats for metrics failed", what)
            return
        yield from families(snapshot)
