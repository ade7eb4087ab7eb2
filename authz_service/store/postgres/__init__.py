"""PostgreSQL backend: `connect()` returns a `PostgresStore` (the `Store` protocol on an
asyncpg pool); `migrate()` brings a database to this build's schema; `RevisionTracker`
follows every tenant's head through LISTEN/NOTIFY. See docs/storage.md.

This package is the only one that imports asyncpg.
"""

from authz_service.store.postgres.embedded import EmbeddedPostgres, start_embedded
from authz_service.store.postgres.gc import GarbageCollector, GcResult
from authz_service.store.postgres.migrations import migrate
from authz_service.store.postgres.notify import RevisionTracker
from authz_service.store.postgres.store import DEFAULT_RETENTION, PostgresStore, connect

__all__ = [
    "DEFAULT_RETENTION",
    "EmbeddedPostgres",
    "GarbageCollector",
    "GcResult",
    "PostgresStore",
    "RevisionTracker",
    "connect",
    "migrate",
    "start_embedded",
]
