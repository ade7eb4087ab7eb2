"""Composition root: settings -> store -> schema -> engine -> cache -> log -> servicers.

`App.start` builds one worker's whole object graph and binds its port; `App.stop`
drains in-flight calls, flushes the decision log and closes the database pool, in
that order, so nothing a caller received is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from grpc_health.v1 import health_pb2

from authz_service.api.audit import AuditServicer, Replayers
from authz_service.api.auth import Authenticator, AuthInterceptor
from authz_service.api.cert_map import load_certificate_map
from authz_service.api.context_limits import ContextLimits
from authz_service.api.decoding import DecodingInterceptor
from authz_service.api.drain import Drain
from authz_service.api.envoy import ENVOY_CHECK_METHOD, ENVOY_SERVICE_NAME, EnvoyAuthServicer
from authz_service.api.http_listener import HttpListener
from authz_service.api.http_tls import listener_context
from authz_service.api.keys import KeysServicer
from authz_service.api.limits import FailureLimiter
from authz_service.api.permissions import PermissionsServicer
from authz_service.api.relationships import RelationshipsServicer
from authz_service.api.relay import new_secret
from authz_service.api.schema import SchemaServicer
from authz_service.api.scim import ScimApp
from authz_service.api.server import SERVICE_NAMES, build_server
from authz_service.api.service_accounts import ServiceAccountsServicer
from authz_service.api.tenancy import TenancyServicer
from authz_service.api.tenant_gate import TenantGate, TenantGateInterceptor
from authz_service.api.tenants import TenantServicer
from authz_service.api.tls import TlsFiles, bind
from authz_service.cache.dispatcher import CachingDispatcher, Stored
from authz_service.cache.lru import DecisionCache
from authz_service.cache.results import StoredResult
from authz_service.config import Settings
from authz_service.console import start_console
from authz_service.credentials import ApiKey
from authz_service.decisionlog import (
    DecisionLogConfig,
    DecisionLogWriter,
    LogMode,
    PostgresSink,
    load_private_key,
    load_public_key,
)
from authz_service.engine import Candidates, Engine, Limits
from authz_service.errors import AuthzError, FailedPrecondition
from authz_service.gateway import Gateway, load_gateway_config
from authz_service.revisions import HeadTracker, RevisionResolver
from authz_service.service.admission import TenantSlots, WatchSlots
from authz_service.service.audit import AuditTrail
from authz_service.service.keys import KeyAdmin
from authz_service.service.lifecycle import LifecycleService
from authz_service.service.permissions import PermissionService
from authz_service.service.provisioning import ProvisioningService, ScimMapping
from authz_service.service.reconcile import Reconciler
from authz_service.service.relationships import RelationshipService
from authz_service.service.replay import Replayer
from authz_service.service.schemas import SchemaManager
from authz_service.service.service_account_report import ServiceAccountReporter
from authz_service.service.service_accounts import ServiceAccountAdmin
from authz_service.service.tenancy import TenancyService
from authz_service.service.tenants import TenantService
from authz_service.store.index import IndexedStore
from authz_service.store.memory import MemoryStore
from authz_service.store.protocol import RelationshipReader, Store
from authz_service.telemetry import PoolStats, Telemetry
from authz_service.tenancy import BindingGrants, SubjectStatuses
from authz_service.tenancy.suspension import TenantSuspensions

__all__ = ["App", "Resources", "decision_service", "open_store", "prepare_database"]

log = logging.getLogger(__name__)

MEMORY_URL = "memory://"
_KEPT_WALKS = 8  # LookupResources walks kept per worker (a few MB each at 1M relationships)


# The longest one resource may take to close. Calls have been drained by then; a closer
# still running past this is stuck (seen: a pooled connection left busy under heavy load),
# and shutdown must neither hang nor leave the resources after it open.
CLOSE_BOUND_S = 30.0


@dataclass
class Resources:
    """Things that must be closed on shutdown, in reverse order of opening."""

    closers: list[Any] = field(default_factory=list)
    close_bound_s: float = CLOSE_BOUND_S

    async def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                async with asyncio.timeout(self.close_bound_s):
                    await closer()
            except TimeoutError:
                log.error(
                    "shutdown: %s did not finish within %.0f s; abandoned",
                    getattr(closer, "__qualname__", closer),
                    self.close_bound_s,
                )
            except Exception:  # one failing closer must not keep the others open
                log.exception("error during shutdown")


async def prepare_database(settings: Settings, resources: Resources) -> str:
    """The DSN to use: the configured URL, or an embedded server started in the data
    directory (stopped with `resources`); pending migrations applied if configured."""
    from authz_service.store import postgres

    dsn = settings.database_url
    if settings.embedded:
        embedded = await postgres.start_embedded(settings.data_dir / "pgdata")
        resources.closers.append(embedded.aclose)
        dsn = embedded.dsn
    if settings.migrate_on_start:
        await postgres.migrate(dsn)
    return dsn


async def open_store(settings: Settings, resources: Resources) -> tuple[Store, Any]:
    """The configured store and its revision tracker (None for memory)."""
    if settings.database_url == MEMORY_URL:
        return MemoryStore(), None
    from authz_service.store import postgres

    dsn = await prepare_database(settings, resources)
    store = await postgres.connect(
        dsn,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        # The same window as the collector below: at_exact_snapshot (and replay) must
        # refuse exactly the revisions whose history the collector may have removed.
        retention=timedelta(hours=settings.retention_hours),
        statement_timeout_ms=settings.db_statement_timeout_ms,
        replica_dsns=settings.replica_urls,
        replica_max_lag_s=settings.replica_max_lag_ms / 1000,
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


def _log_root(settings: Settings, worker: int) -> Path:
    log_dir = settings.decision_log_dir
    return log_dir if settings.workers == 1 else log_dir / f"worker-{worker}"


def _log_writer(
    settings: Settings, worker: int, mirror: PostgresSink | None = None
) -> DecisionLogWriter | None:
    if settings.log_mode == "off":
        return None
    key = Path(settings.log_signing_key) if settings.log_signing_key else None
    return DecisionLogWriter(
        DecisionLogConfig(
            root=_log_root(settings, worker),
            mode=LogMode(settings.log_mode),
            signing_key_path=key,
            checkpoint_interval=settings.log_checkpoint_s,
            commit_window=settings.log_commit_window_ms / 1000,
            redact_paths=settings.redact_paths,
        ),
        mirror=mirror,
    )


async def _log_mirror(settings: Settings, worker: int, store: Store) -> PostgresSink | None:
    """The PostgreSQL copy of the log (AUTHZ_LOG_POSTGRES), brought up to date from the
    files before the writer starts: the live feed only appends after what is there, so
    records written while the mirror was off or the database away must be copied first."""
    if not settings.log_postgres or settings.log_mode == "off":
        return None
    pool = getattr(store, "pool", None)
    if pool is None:
        raise FailedPrecondition("AUTHZ_LOG_POSTGRES needs a PostgreSQL database, not memory://")
    mirror = PostgresSink(pool, source="" if settings.workers == 1 else f"worker-{worker}")
    copied = await mirror.catch_up(_log_root(settings, worker))
    if copied:
        log.info("decision log mirror caught up from the files (%d records)", copied)
    return mirror


def _register_database(telemetry: Telemetry, store: Store) -> None:
    """Metrics of the PostgreSQL store's pool and read replicas (the memory store has none)."""
    pool = getattr(store, "pool", None)
    if pool is not None:
        telemetry.register_pool(
            lambda: PoolStats(pool.get_size(), pool.get_idle_size(), pool.get_max_size())
        )
    replica_stats = getattr(store, "replica_stats", None)
    if replica_stats is not None and replica_stats():
        telemetry.register_replicas(replica_stats)


async def _log_public_keys(settings: Settings) -> list[Ed25519PublicKey] | None:
    """The keys AuditService.VerifyLog checks checkpoints with: the signing key's public
    half and those of the keys it replaced (AUTHZ_LOG_PREVIOUS_PUBLIC_KEYS). Loaded at
    start, so that a missing or wrong file stops the server rather than every VerifyLog."""
    if not settings.log_signing_key:
        return None

    def load() -> list[Ed25519PublicKey]:
        try:
            keys = [load_private_key(Path(settings.log_signing_key)).public_key()]
        except AuthzError as exc:
            raise type(exc)(f"AUTHZ_LOG_SIGNING_KEY (--signing-key): {exc.message}") from None
        for path in settings.previous_public_keys:
            try:
                keys.append(load_public_key(path))
            except AuthzError as exc:
                raise type(exc)(f"AUTHZ_LOG_PREVIOUS_PUBLIC_KEYS: {exc.message}") from None
        return keys

    return await asyncio.to_thread(load)


def _authenticator(
    settings: Settings, store: Store, telemetry: Telemetry, resources: Resources
) -> Authenticator | None:
    """The key checks every door shares (gRPC, SCIM, the console); None with authentication
    off. The last-use times it gathers are written at stop."""
    if not settings.auth:
        log.warning(
            "authentication is off: every caller is trusted; use only for local development"
        )
        return None
    limiter = FailureLimiter(
        threshold=settings.auth_fail_threshold,
        max_backoff_s=settings.auth_backoff_max_s,
        on_failure=telemetry.metrics.record_auth_failure,
    )
    authenticator = Authenticator(
        store.keys,
        ttl_s=settings.auth_cache_ttl_s,
        negative_ttl_s=settings.auth_negative_ttl_s,
        limiter=limiter,
    )
    resources.closers.append(authenticator.flush_usage)
    return authenticator


def _tls(settings: Settings) -> TlsFiles | None:
    if not settings.tls_cert:
        return None
    ca = Path(settings.tls_client_ca) if settings.tls_client_ca else None
    return TlsFiles(Path(settings.tls_cert), Path(settings.tls_key), ca)


def _http_tls(settings: Settings, listen: str, setting: str) -> ssl.SSLContext | None:
    """TLS for an HTTP listener: the gRPC port's certificate, without client certificates
    (SCIM clients and scrapers authenticate with keys; identity providers rarely can
    present a certificate), under the gRPC port's plaintext rules."""
    files = _tls(settings)
    if files is not None:
        files = TlsFiles(files.cert, files.key)
    return listener_context(listen, files, plaintext=settings.plaintext, setting=setting)


def _certificate_map(settings: Settings) -> dict[str, ApiKey] | None:
    if not settings.tls_client_map:
        return None
    return load_certificate_map(Path(settings.tls_client_map))


def _envoy(
    settings: Settings, permissions: PermissionService, tenants: TenantService, deadline_s: float
) -> EnvoyAuthServicer | None:
    """Envoy ext_authz on the same server, when a gateway config says how to map requests."""
    if not settings.gateway_config:
        return None
    gateway = Gateway(load_gateway_config(Path(settings.gateway_config)))
    return EnvoyAuthServicer(gateway, permissions, default_deadline_s=deadline_s, tenants=tenants)


def _service_accounts(
    settings: Settings,
    store: Store,
    schemas: SchemaManager,
    lifecycle: LifecycleService,
    keys: KeyAdmin,
    permissions: PermissionService,
    audit: AuditTrail,
    deadline_s: float,
) -> ServiceAccountsServicer:
    admin = ServiceAccountAdmin(
        store=store,
        schemas=schemas,
        lifecycle=lifecycle,
        keys=keys,
        audit=audit,
        on_key_changed=keys.key_changed,
    )
    reporter = ServiceAccountReporter(
        store=store,
        accounts=admin,
        permissions=permissions,
        # The report reads decisions from this server's log directory, when it logs.
        log_dir=None if settings.log_mode == "off" else settings.decision_log_dir,
    )
    return ServiceAccountsServicer(admin, reporter, default_deadline_s=deadline_s)


def _scim(
    settings: Settings,
    store: Store,
    reader: RelationshipReader,
    **services: Any,
) -> tuple[ProvisioningService, Reconciler]:
    """SCIM provisioning and its reconciliation (the HTTP listener is `_scim_listener`)."""
    mapping = ScimMapping(
        settings.scim_user_type, settings.scim_group_type, settings.scim_member_relation
    )
    provisioning = ProvisioningService(
        records=store.scim, tenants=store.tenants, mapping=mapping, **services
    )
    reconciler = Reconciler(
        provisioning=provisioning,
        reader=reader,
        lifecycle=services["lifecycle"],
        relationships=services["relationships"],
    )
    return provisioning, reconciler


async def _scim_listener(
    settings: Settings,
    worker: int,
    resources: Resources,
    provisioning: ProvisioningService,
    authenticator: Authenticator | None,
) -> HttpListener | None:
    """The SCIM listener, when configured; worker 0 only, since it binds one port. Keys
    are verified by the gRPC port's authenticator: the same cache, the same negative
    cache and the same backoff of failing peers."""
    if not settings.scim_listen or worker != 0:
        return None
    scim = await HttpListener.start(
        ScimApp(
            provisioning, authenticator, default_deadline_s=settings.default_deadline_ms / 1000
        ),
        settings.scim_listen,
        name="SCIM",
        grace_s=settings.shutdown_grace_s,
        tls=_http_tls(settings, settings.scim_listen, "AUTHZ_SCIM_LISTEN"),
    )
    resources.closers.append(scim.stop)
    return scim


def _console_socket(
    settings: Settings, worker: int, server: grpc.aio.Server, resources: Resources
) -> str | None:
    """A gRPC port on a Unix socket in a private directory, for the console's calls:
    they pass the same interceptors as every other call (authentication included), with
    no TLS to configure between two parts of one process. Worker 0 only, like the console."""
    if not settings.console_listen or worker != 0:
        return None
    folder = tempfile.mkdtemp(prefix="authz-console-")  # mode 0700: this user only
    resources.closers.append(_remover(folder))
    target = f"unix:{folder}/grpc.sock"
    if server.add_insecure_port(target) == 0:
        raise OSError(f"could not bind the console's socket {target}")
    return target


def _remover(folder: str) -> Callable[[], Any]:
    async def remove() -> None:
        await asyncio.to_thread(shutil.rmtree, folder, True)

    return remove


async def _console_listener(
    settings: Settings,
    target: str | None,
    authenticator: Authenticator | None,
    relay: str | None,
    resources: Resources,
) -> HttpListener | None:
    if target is None or relay is None:
        return None
    console = await start_console(
        settings.console_listen,
        target=target,
        authenticator=authenticator,
        grace_s=settings.shutdown_grace_s,
        deadline_s=settings.default_deadline_ms / 1000,
        relay=relay,
        tls=_http_tls(settings, settings.console_listen, "AUTHZ_CONSOLE_LISTEN"),
    )
    resources.closers.append(console.stop)
    return console


def _relationship_index(
    settings: Settings, store: Store, resources: Resources
) -> IndexedStore | None:
    """The in-memory relationship index over PostgreSQL (the memory store needs none)."""
    if settings.index_max_rows <= 0 or settings.database_url == MEMORY_URL:
        return None
    index = IndexedStore(store, max_rows=settings.index_max_rows)
    resources.closers.append(index.stop)
    return index


async def _serving(
    health: Any, names: tuple[str, ...], writer: DecisionLogWriter | None, resources: Resources
) -> None:
    """Report `names` SERVING, until the decision log fails, if there is one."""
    for name in names:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    if writer is not None:
        watch = asyncio.create_task(_not_serving_once_broken(writer, health, names))
        resources.closers.append(_cancelled(watch))


async def _not_serving_once_broken(
    writer: DecisionLogWriter, health: Any, names: tuple[str, ...]
) -> None:
    """A decision log that failed stops for good and fails every call from then on:
    say so to health checks, so that the worker is restarted (`run_worker` ends it)."""
    await writer.wait_broken()
    for name in names:
        await health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)


def _cancelled(task: asyncio.Task[None]) -> Callable[[], Awaitable[None]]:
    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return cancel


def decision_service(
    settings: Settings,
    store: Store,
    schemas: SchemaManager,
    resolver: RevisionResolver,
    *,
    cache: DecisionCache[StoredResult],
    audit: AuditTrail,
    observe: Callable[[str, bool, int], None] | None = None,
    reader: RelationshipReader | None = None,
) -> tuple[PermissionService, BindingGrants, SubjectStatuses]:
    """The decision function and the rules around it, composed here once for both live
    checks and replay (`authz audit replay`), so that a replayed decision is judged by
    the same engine, grant sources and rules as the original. `reader` (default: the
    store) is where the engine reads relationships: the in-memory index when serving."""
    # Role bindings are a grant source of the engine; subject status a rule around it.
    grants = BindingGrants(reader or store)
    statuses = SubjectStatuses(reader or store)
    # Subproblems (group memberships, folder views) are shared across requests through
    # a second LRU of the same bound, keyed by tenant, revision and schema version.
    subproblems: DecisionCache[Stored] = DecisionCache(settings.cache_size)
    engine = Engine(
        reader or store,
        limits=Limits(
            settings.max_depth,
            settings.max_fanout,
            max_subproblems=settings.max_subproblems,
            max_caveat_cost=settings.max_caveat_cost,
        ),
        grant_sources=[grants],
        dispatcher_wrapper=lambda inner: CachingDispatcher(inner, subproblems),
        # A few large LookupResources walks, so that a client paging through one (limit
        # and cursor, at the first page's revision) does not pay the walk on every page.
        walks=DecisionCache[Candidates](_KEPT_WALKS),
    )
    permissions = PermissionService(
        engine=engine,
        schemas=schemas,
        resolver=resolver,
        cache=cache,
        audit=audit,
        max_batch=settings.max_batch,
        observe=observe,
        statuses=statuses,
        tenants=TenantSuspensions(reader or store),
        slots=TenantSlots(settings.tenant_max_concurrent_rpcs),
        refresh_ahead_s=settings.refresh_ahead_ms / 1000,
        refresh_deadline_s=settings.default_deadline_ms / 1000,
    )
    return permissions, grants, statuses


def _replayers(settings: Settings, store: Store, schemas: SchemaManager) -> Replayers:
    """Replay for AuditService.ReplayDecisions: the decision function composed as for
    live checks, but reading the store (old revisions; the in-memory index holds only
    recent ones), with no cache and no log (replays are not decisions)."""
    permissions, _, _ = decision_service(
        settings,
        store,
        schemas,
        RevisionResolver(store),
        cache=DecisionCache(1),  # evaluate() never uses it
        audit=AuditTrail(None),
    )
    return lambda version: Replayer(permissions, schemas, store, schema_version=version)


@dataclass
class App:
    settings: Settings
    server: grpc.aio.Server
    port: int
    store: Store
    schemas: SchemaManager
    permissions: PermissionService
    relationships: RelationshipService
    cache: DecisionCache[StoredResult]
    writer: DecisionLogWriter | None
    resources: Resources
    health: Any
    drain: Drain
    telemetry: Telemetry
    tenancy: TenancyService | None = None
    lifecycle: LifecycleService | None = None
    index: IndexedStore | None = None  # relationships in memory for the engine
    tenants: TenantService | None = None
    scim: HttpListener | None = None  # the SCIM HTTP listener, when configured
    console: HttpListener | None = None  # the web console, when configured
    tracker: HeadTracker | None = None  # every tenant's head, PostgreSQL only

    @classmethod
    async def start(cls, settings: Settings, *, worker: int = 0) -> App:
        log_keys = await _log_public_keys(settings)  # before anything starts: bad files stop it
        resources = Resources()
        try:
            return await cls._start(settings, worker, resources, log_keys)
        except BaseException:
            await resources.close()
            raise

    @classmethod
    async def _start(
        cls,
        settings: Settings,
        worker: int,
        resources: Resources,
        log_keys: list[Ed25519PublicKey] | None,
    ) -> App:
        store, tracker = await open_store(settings, resources)
        schemas = SchemaManager(
            store,
            max_schema_bytes=settings.max_schema_bytes,
            max_caveat_bytes=settings.max_caveat_bytes,
            max_caveat_cost=settings.max_caveat_cost,
        )
        await schemas.start()
        resources.closers.append(schemas.aclose)
        writer = _log_writer(settings, worker, await _log_mirror(settings, worker, store))
        if writer is not None:
            await writer.start()
            resources.closers.append(writer.aclose)
        audit = AuditTrail(writer, max_explanation_nodes=settings.max_explanation_nodes)
        cache: DecisionCache[StoredResult] = DecisionCache(settings.cache_size)
        telemetry = await Telemetry.start(
            settings.metrics_listen,
            settings.trace_ratio,
            worker=worker,
            span_exporter=settings.trace_exporter,
            metrics_tls=(
                _http_tls(settings, settings.metrics_listen, "AUTHZ_METRICS_LISTEN")
                if settings.metrics_listen
                else None
            ),
        )
        resources.closers.append(telemetry.aclose)
        telemetry.register_cache(cache.stats)
        if writer is not None:
            telemetry.register_log(writer.stats)
        _register_database(telemetry, store)
        quantum = settings.quantization_ms
        resolver = RevisionResolver(
            store,
            max_staleness_s=settings.max_staleness_ms / 1000,
            quantum_s=None if quantum < 0 else quantum / 1000,
            tracker=tracker,
        )
        index = _relationship_index(settings, store, resources)
        if index is not None:
            telemetry.register_index(index.stats)
        permissions, grants, statuses = decision_service(
            settings,
            store,
            schemas,
            resolver,
            cache=cache,
            audit=audit,
            observe=telemetry.record_decision,
            reader=index,
        )
        tenancy = TenancyService(
            store=store,
            schemas=schemas,
            resolver=resolver,
            audit=audit,
            grants=grants,
            max_depth=settings.max_depth,
        )
        lifecycle = LifecycleService(
            store=store, schemas=schemas, resolver=resolver, audit=audit, statuses=statuses
        )
        relationships = RelationshipService(
            store=store,
            schemas=schemas,
            resolver=resolver,
            audit=audit,
            max_batch=settings.max_batch,
            watch_read_s=settings.default_deadline_ms / 1000,
            slots=permissions.slots,  # a tenant's reads share one count
            watches=WatchSlots(settings.tenant_max_watches, settings.watch_limit),
        )
        provisioning, reconciler = _scim(
            settings,
            store,
            store,  # drift is read at the head revision, from the store itself
            resolver=resolver,
            lifecycle=lifecycle,
            relationships=relationships,
        )
        tenants = TenantService(
            registry=(index or store).tenants,
            store=store,
            schemas=schemas,
            resolver=resolver,
            audit=audit,
            fresh_s=settings.max_staleness_ms / 1000,
            purges=tracker,
        )
        if settings.demo:
            from authz_service.demo import load_demo

            await load_demo(schemas, relationships, tenants)
        deadline = settings.default_deadline_ms / 1000
        limits = ContextLimits(
            settings.max_context_bytes,
            settings.max_context_depth,
            settings.max_context_keys,
            settings.max_context_list,
        )
        envoy = _envoy(settings, permissions, tenants, deadline)
        authenticator = _authenticator(settings, store, telemetry, resources)
        # Proves that a call came from this process's console, which names the browser
        # each call is made for (api/relay.py); known to nothing else. None without a
        # console: no call's metadata is then searched for a relay.
        relay = new_secret() if settings.console_listen and worker == 0 else None
        key_admin = KeyAdmin(
            store.keys,
            audit,
            on_changed=authenticator.changed if authenticator else lambda _key_id: None,
            tenants=store.tenants,
        )
        gate = TenantGate(tenants, default_deadline_s=deadline)
        # Envoy may let a request through on an error status: a Check refused while
        # draining is answered with a denial instead (docs/gateway.md).
        drain = Drain(answers={ENVOY_CHECK_METHOD: envoy.unavailable} if envoy else None)
        server, health_servicer = build_server(
            permissions=PermissionsServicer(
                permissions,
                default_deadline_s=deadline,
                max_explanation_nodes=settings.max_explanation_nodes,
                context_limits=limits,
            ),
            relationships=RelationshipsServicer(
                relationships, default_deadline_s=deadline, context_limits=limits
            ),
            schema=SchemaServicer(schemas, audit, default_deadline_s=deadline),
            audit=AuditServicer(
                settings.decision_log_dir,
                log_keys,
                replayers=_replayers(settings, store, schemas),
                default_deadline_s=deadline,
            ),
            max_concurrent_rpcs=settings.max_concurrent_rpcs,
            reuse_port=settings.workers > 1,
            # Decoding before authentication, which reads the request's tenant.
            interceptors=[
                telemetry.interceptor,
                drain,  # after telemetry, so that the calls it refuses are counted too
                DecodingInterceptor(),
                # After telemetry, so that refused calls are counted and traced too.
                # The tenant gate runs after authentication (callers learn nothing of
                # tenants not theirs), inside the auth interceptor when there is one.
                (
                    AuthInterceptor(
                        authenticator,
                        certificates=bool(settings.tls_client_ca),
                        certificate_map=_certificate_map(settings),
                        gate=gate,
                        # Envoy may let a request through on an error status: a refused
                        # Check is answered with a denial instead (docs/gateway.md).
                        answers={ENVOY_CHECK_METHOD: envoy.refused} if envoy else None,
                        relay=relay,
                    )
                    if authenticator
                    else TenantGateInterceptor(gate)
                ),
            ],
            envoy=envoy,
            tenancy=TenancyServicer(
                tenancy, lifecycle, default_deadline_s=deadline, reconciler=reconciler
            ),
            tenants=TenantServicer(tenants, default_deadline_s=deadline),
            keys=KeysServicer(key_admin, default_deadline_s=deadline),
            service_accounts=_service_accounts(
                settings, store, schemas, lifecycle, key_admin, permissions, audit, deadline
            ),
        )
        scim = await _scim_listener(settings, worker, resources, provisioning, authenticator)
        port = bind(server, settings.listen, _tls(settings), plaintext=settings.plaintext)
        if port == 0:
            raise OSError(f"could not bind {settings.listen}")
        console_target = _console_socket(settings, worker, server, resources)
        await server.start()
        # On a failure below (the console's bind, say) nothing else would stop it, and
        # its finalizer would run after the event loop closed. After App.stop's graceful
        # stop this is a no-op.
        resources.closers.append(functools.partial(server.stop, None))
        console = await _console_listener(settings, console_target, authenticator, relay, resources)
        served = ("", *SERVICE_NAMES, *((ENVOY_SERVICE_NAME,) if envoy else ()))
        await _serving(health_servicer, served, writer, resources)
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
            drain,
            telemetry,
            tenancy,
            lifecycle,
            index,
            tenants,
            scim,
            console,
            tracker,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Say NOT_SERVING, drain the calls (api/drain.py), then flush the log and close.
        Calls get `grace` seconds (AUTHZ_SHUTDOWN_GRACE_S) in all."""
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        if self.console is not None:  # its pages call the gRPC port: close them first
            await self.console.stop()
        await self.relationships.stop_watches()
        grace = self.settings.shutdown_grace_s if grace is None else grace
        loop = asyncio.get_running_loop()
        end = loop.time() + grace
        # Half the grace at most: grpc's stop keeps the rest for the calls still running.
        await self.drain.until_quiet(grace / 2)
        await self.server.stop(max(0.0, end - loop.time()))
        await self.resources.close()
