"""Composition root: settings -> store -> schema -> engine -> cache -> log -> servicers.

`App.start` builds one worker's whole object graph and binds its port; `App.stop`
drains in-flight calls, flushes the decision log and closes the database pool, in
that order, so nothing a caller received is lost.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from authz_service.api.permissions import PermissionsServicer
from authz_service.api.relationships import RelationshipsServicer
from authz_service.api.schema import SchemaServicer
from authz_service.api.server import SERVICE_NAMES, build_server
from authz_service.cache.lru import DecisionCache
from authz_service.config import Settings
from authz_service.decisionlog import DecisionLogConfig, DecisionLogWriter, LogMode
from authz_service.engine import CheckResult, Engine, Limits
from authz_service.revisions import RevisionResolver
from authz_service.service.audit import AuditTrail
from authz_service.service.permissions import PermissionService
from authz_service.service.relationships import RelationshipService
from authz_service.service.schemas import SchemaManager
from authz_service.store.memory import MemoryStore
from authz_service.store.protocol import Store
from authz_service.telemetry import PoolStats, Telemetry

__all__ = ["App", "open_store"]

log = logging.getLogger(__name__)

MEMORY_URL = "memory://"


@dataclass
class Resources:
    """Things that must be closed on shutdown, in reverse order of opening."""

    closers: list[Any] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:  # one failing closer must not keep the others open
                log.exception("error during shutdown")


async def open_store(settings: Settings, resources: Resources) -> tuple[Store, Any]:
    """The configured store and its revision tracker (None for memory)."""
    if settings.database_url == MEMORY_URL:
        return MemoryStore(), None
    from authz_service.store import postgres

    dsn = settings.database_url
    if settings.embedded:
        embedded = await postgres.start_embedded(settings.data_dir / "pgdata")
        resources.closers.append(embedded.aclose)
        dsn = embedded.dsn
    if settings.migrate_on_start:
        await postgres.migrate(dsn)
    store = await postgres.connect(
        dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    resources.closers.append(store.close)
    tracker = postgres.RevisionTracker(
        dsn, poll_interval=settings.revision_poll_ms / 1000, store=store
    )
    await tracker.start()
    resources.closers.append(tracker.aclose)
    gc = postgres.GarbageCollector(
        store, retention_s=settings.retention_hours * 3600, interval_s=settings.gc_interval_s
    )
    gc.start()
    resources.closers.append(gc.stop)
    return store, tracker


def _log_writer(settings: Settings, worker: int) -> DecisionLogWriter | None:
    if settings.log_mode == "off":
        return None
    root = settings.log_dir if settings.workers == 1 else settings.log_dir / f"worker-{worker}"
    key = Path(settings.log_signing_key) if settings.log_signing_key else None
    return DecisionLogWriter(
        DecisionLogConfig(
            root=root,
            mode=LogMode(settings.log_mode),
            signing_key_path=key,
            checkpoint_interval=settings.log_checkpoint_s,
            redact_paths=settings.redact_paths,
        )
    )


@dataclass
class App:
    settings: Settings
    server: grpc.aio.Server
    port: int
    store: Store
    schemas: SchemaManager
    permissions: PermissionService
    relationships: RelationshipService
    cache: DecisionCache[CheckResult]
    writer: DecisionLogWriter | None
    resources: Resources
    health: Any
    telemetry: Telemetry

    @classmethod
    async def start(cls, settings: Settings, *, worker: int = 0) -> App:
        resources = Resources()
        try:
            return await cls._start(settings, worker, resources)
        except BaseException:
            await resources.close()
            raise

    @classmethod
    async def _start(cls, settings: Settings, worker: int, resources: Resources) -> App:
        store, tracker = await open_store(settings, resources)
        schemas = SchemaManager(store)
        await schemas.start()
        resources.closers.append(schemas.aclose)
        writer = _log_writer(settings, worker)
        if writer is not None:
            await writer.start()
            resources.closers.append(writer.aclose)
        audit = AuditTrail(writer)
        cache: DecisionCache[CheckResult] = DecisionCache(settings.cache_size)
        telemetry = await Telemetry.start(
            settings.metrics_listen,
            settings.trace_ratio,
            worker=worker,
            span_exporter=settings.trace_exporter,
        )
        resources.closers.append(telemetry.aclose)
        telemetry.register_cache(cache.stats)
        if writer is not None:
            telemetry.register_log(writer.stats)
        pool = getattr(store, "pool", None)
        if pool is not None:
            telemetry.register_pool(
                lambda: PoolStats(pool.get_size(), pool.get_idle_size(), pool.get_max_size())
            )
        engine = Engine(store, limits=Limits(settings.max_depth, settings.max_fanout))
        resolver = RevisionResolver(
            store, max_staleness_s=settings.max_staleness_ms / 1000, tracker=tracker
        )
        permissions = PermissionService(
            engine=engine,
            schemas=schemas,
            resolver=resolver,
            cache=cache,
            audit=audit,
            max_batch=settings.max_batch,
            observe=telemetry.record_decision,
        )
        relationships = RelationshipService(
            store=store,
            schemas=schemas,
            resolver=resolver,
            audit=audit,
            max_batch=settings.max_batch,
        )
        if settings.demo:
            from authz_service.demo import load_demo

            await load_demo(schemas, relationships)
        deadline = settings.default_deadline_ms / 1000
        server, health_servicer = build_server(
            permissions=PermissionsServicer(permissions, default_deadline_s=deadline),
            relationships=RelationshipsServicer(relationships, default_deadline_s=deadline),
            schema=SchemaServicer(schemas, audit, default_deadline_s=deadline),
            max_concurrent_rpcs=settings.max_concurrent_rpcs,
            reuse_port=settings.workers > 1,
            interceptors=[telemetry.interceptor],
        )
        port = server.add_insecure_port(settings.listen)
        if port == 0:
            raise OSError(f"could not bind {settings.listen}")
        await server.start()
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return cls(
            settings,
            server,
            port,
            store,
            schemas,
            permissions,
            relationships,
            cache,
            writer,
            resources,
            health_servicer,
            telemetry,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, drain in-flight ones, then flush the log and close."""
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.shutdown_grace_s if grace is None else grace)
        await self.resources.close()
