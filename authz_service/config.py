"""Settings: the only module that reads environment variables.

Precedence: command-line flag > environment variable > default. Every setting is listed
in the README's configuration table with its variable name.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from authz_service.errors import InvalidArgument, echo

__all__ = ["Settings", "load_settings", "setting_name"]

LogMode = Literal["durable", "buffered", "off"]

# The largest number any setting takes: gRPC and the event loop hold several in a C int,
# and a larger one failed with an OverflowError traceback instead of an error naming it.
_MOST = 2**31 - 1


class _Range(NamedTuple):
    """The values a numeric setting takes: from `least` (excluded when `above`) to `most`,
    and always a finite number."""

    least: float
    most: float = _MOST
    above: bool = False

    def holds(self, value: float) -> bool:
        if not math.isfinite(value) or value > self.most:
            return False
        return value > self.least if self.above else value >= self.least

    def describe(self) -> str:
        least, most = (int(n) if n == int(n) else n for n in (self.least, self.most))
        low = f"greater than {least}" if self.above else f"at least {least}"
        return f"a number {low} and at most {most}"


# Every numeric setting and its range; special values (0 = off, -1 = the whole window)
# are those the README's configuration table documents.
_RANGES: dict[str, _Range] = {
    "workers": _Range(1),  # 0 (one per core) is resolved before the check
    "replica_max_lag_ms": _Range(1),
    "db_pool_min": _Range(0),
    "db_pool_max": _Range(1),
    "db_statement_timeout_ms": _Range(0),  # 0 = never
    "cache_size": _Range(1),
    "max_staleness_ms": _Range(0),
    "quantization_ms": _Range(-1),  # -1 = the staleness window, 0 = follow the head
    "refresh_ahead_ms": _Range(0),  # 0 = off
    "index_max_rows": _Range(0),  # 0 = off
    "revision_poll_ms": _Range(1),
    # An age past about 8000 years is no date: collecting history would overflow.
    "retention_hours": _Range(0, 1_000_000, above=True),
    "gc_interval_s": _Range(0, above=True),
    "max_concurrent_rpcs": _Range(1),
    "max_depth": _Range(1),
    "max_fanout": _Range(1),
    "max_batch": _Range(1),
    "default_deadline_ms": _Range(1),
    "max_subproblems": _Range(1),
    "max_explanation_nodes": _Range(1),
    "max_context_bytes": _Range(1),
    "max_context_depth": _Range(1),
    "max_context_keys": _Range(1),
    "max_context_list": _Range(1),
    "max_caveat_cost": _Range(1),
    "max_schema_bytes": _Range(1),
    "max_caveat_bytes": _Range(1),  # and the CEL parser's ceiling, checked apart
    "tenant_max_concurrent_rpcs": _Range(1),
    "tenant_max_watches": _Range(1),
    "max_watches": _Range(0),  # 0 = a quarter of max_concurrent_rpcs
    "shutdown_grace_s": _Range(0),
    "log_checkpoint_s": _Range(0, above=True),
    "log_commit_window_ms": _Range(0),  # 0 = each round at once
    "trace_ratio": _Range(0, 1),
    "auth_cache_ttl_s": _Range(0),
    "auth_fail_threshold": _Range(1),
    "auth_backoff_max_s": _Range(0),
    "auth_negative_ttl_s": _Range(0),  # 0 = always look up
}

# The settings that are a host:port to listen on; empty is off for all but `listen`.
_ADDRESSES = ("listen", "scim_listen", "console_listen", "metrics_listen")


def setting_name(name: str) -> str:
    """How messages name the setting `name`: its variable, and its `serve` flag if any,
    e.g. `AUTHZ_LISTEN (--listen)`."""
    meta = next(f.metadata for f in fields(Settings) if f.name == name)
    flag = meta.get("flag")
    return f"{meta['env']} ({flag})" if flag else str(meta["env"])


def _shown(value: float) -> str:
    """A number as its setting would be written: 0 rather than 0.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return echo(value)


def _address_problem(address: str) -> str | None:
    """Why `address` is not a host:port to listen on (None: it is)."""
    host, colon, port = address.rpartition(":")
    if not colon:
        return "is not host:port"
    if host.startswith("[") != host.endswith("]") or (host.startswith("[") and len(host) < 3):
        return "is not host:port: an IPv6 host is written in brackets, [::1]:50051"
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        return "is not host:port: the port is a number from 0 to 65535"
    return None


# 16 KB of `x.a.a...` compiles; 40 KB crashed the process (a segfault in the CEL
# library's parser, measured on 2026-12-08 with an 8 MiB stack).
_MAX_CAVEAT_BYTES_CEILING = 16_384


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting; its field's metadata names its environment variable (`env`) and,
    where `authz serve` has one, its flag (`flag`), for messages naming them."""

    listen: str = field(
        default="127.0.0.1:50051", metadata={"env": "AUTHZ_LISTEN", "flag": "--listen"}
    )
    workers: int = field(default=1, metadata={"env": "AUTHZ_WORKERS", "flag": "--workers"})
    # TLS on the gRPC port (docs/auth.md "Transport security"): PEM files, re-read when
    # they change; a client CA makes client certificates required.
    tls_cert: str = field(default="", metadata={"env": "AUTHZ_TLS_CERT", "flag": "--tls-cert"})
    tls_key: str = field(default="", metadata={"env": "AUTHZ_TLS_KEY", "flag": "--tls-key"})
    tls_client_ca: str = field(
        default="", metadata={"env": "AUTHZ_TLS_CLIENT_CA", "flag": "--tls-client-ca"}
    )
    # YAML: certificate subject or SAN -> tenant and scopes (api/cert_map.py).
    tls_client_map: str = field(
        default="", metadata={"env": "AUTHZ_TLS_CLIENT_MAP", "flag": "--tls-client-map"}
    )
    # Plaintext beyond loopback only when this says so (with a WARNING).
    plaintext: bool = field(default=False, metadata={"env": "AUTHZ_PLAINTEXT"})
    database_url: str = field(
        default="", repr=False, metadata={"env": "AUTHZ_DATABASE_URL", "flag": "--database-url"}
    )
    # Hot standbys of that database for relationship reads, comma-separated URLs; one
    # further behind than replica_max_lag_ms, or down, is skipped (docs/replicas.md).
    database_replica_urls: str = field(
        default="", repr=False, metadata={"env": "AUTHZ_DATABASE_REPLICA_URLS"}
    )
    replica_max_lag_ms: int = field(default=1000, metadata={"env": "AUTHZ_REPLICA_MAX_LAG_MS"})
    data_dir: Path = field(
        default=Path(".authz"), metadata={"env": "AUTHZ_DATA_DIR", "flag": "--data-dir"}
    )
    migrate_on_start: bool = field(default=True, metadata={"env": "AUTHZ_MIGRATE_ON_START"})
    db_pool_min: int = field(default=2, metadata={"env": "AUTHZ_DB_POOL_MIN"})
    db_pool_max: int = field(default=10, metadata={"env": "AUTHZ_DB_POOL_MAX"})
    # PostgreSQL ends a statement (or an idle transaction) of the service's pool running
    # longer than this (0 = never): the server's side of a call whose client gave up.
    db_statement_timeout_ms: int = field(
        default=30_000, metadata={"env": "AUTHZ_DB_STATEMENT_TIMEOUT_MS"}
    )
    cache_size: int = field(default=100_000, metadata={"env": "AUTHZ_CACHE_SIZE"})
    max_staleness_ms: int = field(default=1000, metadata={"env": "AUTHZ_MAX_STALENESS_MS"})
    # How long every minimize_latency read of a tenant shares one revision (at most the
    # staleness window; -1 means the whole window); see authz_service/revisions.py.
    quantization_ms: int = field(default=-1, metadata={"env": "AUTHZ_QUANTIZATION_MS"})
    # How long before a window ends the Checks asked in it are computed at the next
    # window's revision (0 = off); see authz_service/service/refresh.py.
    refresh_ahead_ms: int = field(default=200, metadata={"env": "AUTHZ_REFRESH_AHEAD_MS"})
    # Relationships held in memory per worker for uncached decisions (0 = off);
    # see docs/performance.md.
    index_max_rows: int = field(default=2_000_000, metadata={"env": "AUTHZ_INDEX_MAX_ROWS"})
    revision_poll_ms: int = field(default=1000, metadata={"env": "AUTHZ_REVISION_POLL_MS"})
    retention_hours: float = field(default=24.0, metadata={"env": "AUTHZ_RETENTION_HOURS"})
    gc_interval_s: float = field(default=300.0, metadata={"env": "AUTHZ_GC_INTERVAL_S"})
    max_concurrent_rpcs: int = field(default=512, metadata={"env": "AUTHZ_MAX_CONCURRENT_RPCS"})
    max_depth: int = field(default=50, metadata={"env": "AUTHZ_MAX_DEPTH"})
    max_fanout: int = field(default=10_000, metadata={"env": "AUTHZ_MAX_FANOUT"})
    max_batch: int = field(default=1000, metadata={"env": "AUTHZ_MAX_BATCH"})
    default_deadline_ms: int = field(default=5000, metadata={"env": "AUTHZ_DEFAULT_DEADLINE_MS"})
    # Request budgets (docs/api.md "Limits", docs/performance.md "Request budgets"):
    # exceeding one is an error naming it, never ALLOWED.
    max_subproblems: int = field(default=100_000, metadata={"env": "AUTHZ_MAX_SUBPROBLEMS"})
    max_explanation_nodes: int = field(
        default=10_000, metadata={"env": "AUTHZ_MAX_EXPLANATION_NODES"}
    )
    max_context_bytes: int = field(default=65_536, metadata={"env": "AUTHZ_MAX_CONTEXT_BYTES"})
    max_context_depth: int = field(default=8, metadata={"env": "AUTHZ_MAX_CONTEXT_DEPTH"})
    max_context_keys: int = field(default=1_000, metadata={"env": "AUTHZ_MAX_CONTEXT_KEYS"})
    max_context_list: int = field(default=1_000, metadata={"env": "AUTHZ_MAX_CONTEXT_LIST"})
    max_caveat_cost: int = field(default=1_000_000, metadata={"env": "AUTHZ_MAX_CAVEAT_COST"})
    max_schema_bytes: int = field(default=262_144, metadata={"env": "AUTHZ_MAX_SCHEMA_BYTES"})
    max_caveat_bytes: int = field(default=4_096, metadata={"env": "AUTHZ_MAX_CAVEAT_BYTES"})
    tenant_max_concurrent_rpcs: int = field(
        default=128, metadata={"env": "AUTHZ_TENANT_MAX_CONCURRENT_RPCS"}
    )
    # Open Watch streams, of one tenant and of the whole server (per worker). Each holds
    # one of gRPC's max_concurrent_rpcs slots while open, so the server's total stays
    # below that cap; 0 means a quarter of it.
    tenant_max_watches: int = field(default=32, metadata={"env": "AUTHZ_TENANT_MAX_WATCHES"})
    max_watches: int = field(default=0, metadata={"env": "AUTHZ_MAX_WATCHES"})
    shutdown_grace_s: float = field(default=10.0, metadata={"env": "AUTHZ_SHUTDOWN_GRACE_S"})
    demo: bool = field(default=False, metadata={"env": "AUTHZ_DEMO"})
    log_mode: str = field(
        default="durable", metadata={"env": "AUTHZ_DECISION_LOG", "flag": "--decision-log"}
    )
    # Unset: `decisions` in the data directory (see `decision_log_dir`).
    log_dir: Path | None = field(
        default=None, metadata={"env": "AUTHZ_LOG_DIR", "flag": "--log-dir"}
    )
    log_signing_key: str = field(
        default="", metadata={"env": "AUTHZ_LOG_SIGNING_KEY", "flag": "--signing-key"}
    )
    # After a key rotation, the public keys (PEM files, comma-separated) of the keys that
    # signed the log before this one: VerifyLog checks each checkpoint with the key it names.
    log_previous_public_keys: str = field(
        default="", metadata={"env": "AUTHZ_LOG_PREVIOUS_PUBLIC_KEYS"}
    )
    log_checkpoint_s: float = field(default=60.0, metadata={"env": "AUTHZ_LOG_CHECKPOINT_S"})
    # Durable mode under concurrent load: how long a write+fsync round waits for company.
    log_commit_window_ms: float = field(default=5.0, metadata={"env": "AUTHZ_LOG_COMMIT_WINDOW_MS"})
    log_redact: str = field(default="", metadata={"env": "AUTHZ_LOG_REDACT"})
    # Mirror decision-log records into the service database (table decision_log).
    log_postgres: bool = field(default=False, metadata={"env": "AUTHZ_LOG_POSTGRES"})
    metrics_listen: str = field(default="", metadata={"env": "AUTHZ_METRICS_LISTEN"})
    trace_ratio: float = field(default=0.0, metadata={"env": "AUTHZ_TRACE_SAMPLE_RATIO"})
    trace_exporter: str = field(default="none", metadata={"env": "AUTHZ_TRACE_EXPORTER"})
    log_format: str = field(default="json", metadata={"env": "AUTHZ_LOG_FORMAT"})
    log_level: str = field(default="INFO", metadata={"env": "AUTHZ_LOG_LEVEL"})
    # Off only for local development (`authz serve --no-auth`); see docs/auth.md.
    auth: bool = field(default=True, metadata={"env": "AUTHZ_AUTH"})
    auth_cache_ttl_s: float = field(default=5.0, metadata={"env": "AUTHZ_AUTH_CACHE_TTL_S"})
    # Abuse limits on failed authentications (docs/auth.md "Failed attempts").
    auth_fail_threshold: int = field(default=10, metadata={"env": "AUTHZ_AUTH_FAIL_THRESHOLD"})
    auth_backoff_max_s: float = field(default=60.0, metadata={"env": "AUTHZ_AUTH_BACKOFF_MAX_S"})
    auth_negative_ttl_s: float = field(default=2.0, metadata={"env": "AUTHZ_AUTH_NEGATIVE_TTL_S"})
    # YAML mapping HTTP requests to checks for Envoy ext_authz (docs/gateway.md); empty = off.
    gateway_config: str = field(
        default="", metadata={"env": "AUTHZ_GATEWAY_CONFIG", "flag": "--gateway-config"}
    )
    # SCIM 2.0 over HTTP (docs/identity.md): host:port, empty = off; served by worker 0.
    scim_listen: str = field(
        default="", metadata={"env": "AUTHZ_SCIM_LISTEN", "flag": "--scim-listen"}
    )
    # The web console (docs/console.md): host:port, empty = off; served by worker 0.
    console_listen: str = field(
        default="", metadata={"env": "AUTHZ_CONSOLE_LISTEN", "flag": "--console"}
    )
    # How SCIM resources map to subjects: `<user type>:<id>`, `<group type>:<id>#<relation>`.
    scim_user_type: str = field(default="user", metadata={"env": "AUTHZ_SCIM_USER_TYPE"})
    scim_group_type: str = field(default="group", metadata={"env": "AUTHZ_SCIM_GROUP_TYPE"})
    scim_member_relation: str = field(
        default="member", metadata={"env": "AUTHZ_SCIM_MEMBER_RELATION"}
    )
    # TLS of client commands (`authz check`, `authz keys`, the health check): the CA they
    # trust, their own certificate and key for mTLS, and the name the server's certificate
    # must carry when it differs from the host dialled. Flags (`--tls-ca`, ...) override.
    client_tls_ca: str = field(default="", metadata={"env": "AUTHZ_CLIENT_TLS_CA"})
    client_tls_cert: str = field(default="", metadata={"env": "AUTHZ_CLIENT_TLS_CERT"})
    client_tls_key: str = field(default="", metadata={"env": "AUTHZ_CLIENT_TLS_KEY"})
    client_tls_server_name: str = field(
        default="", metadata={"env": "AUTHZ_CLIENT_TLS_SERVER_NAME"}
    )
    # The bearer key client commands (`authz check`) present; `--api-key` overrides it.
    api_key: str = field(default="", metadata={"env": "AUTHZ_API_KEY"}, repr=False)

    def __post_init__(self) -> None:
        if self.log_mode not in ("durable", "buffered", "off"):
            raise InvalidArgument(
                f"{setting_name('log_mode')}: decision log mode `{echo(self.log_mode)}` "
                "is not one of durable, buffered, off",
                field="AUTHZ_DECISION_LOG",
                value=self.log_mode,
            )
        choices = {"trace_exporter": ("none", "console"), "log_format": ("json", "text")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InvalidArgument(
                    f"{setting_name(name)} must be one of {', '.join(allowed)}, "
                    f"not `{echo(getattr(self, name))}`",
                    field=name,
                    value=getattr(self, name),
                )
        level = self.log_level.strip().upper()
        if level not in logging.getLevelNamesMapping():
            raise InvalidArgument(
                f"{setting_name('log_level')} must be a level's standard name (DEBUG, INFO, "
                f"WARNING, ERROR, CRITICAL), not `{echo(self.log_level)}`",
                field="log_level",
                value=self.log_level,
            )
        object.__setattr__(self, "log_level", level)
        if self.workers == 0:  # 0 means one worker per core, from the flag or the environment
            object.__setattr__(self, "workers", os.cpu_count() or 1)
        self._check_ranges()
        for name in _ADDRESSES:
            address = getattr(self, name)
            problem = _address_problem(address) if address or name == "listen" else None
            if problem is not None:
                raise InvalidArgument(
                    f"{setting_name(name)}: `{echo(address)}` {problem}",
                    field=name,
                    value=address,
                )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidArgument(
                "AUTHZ_TLS_CERT and AUTHZ_TLS_KEY are set together or not at all",
                field="AUTHZ_TLS_KEY" if self.tls_cert else "AUTHZ_TLS_CERT",
                value="",
            )
        if self.tls_client_ca and not self.tls_cert:
            raise InvalidArgument(
                "AUTHZ_TLS_CLIENT_CA needs AUTHZ_TLS_CERT and AUTHZ_TLS_KEY (mTLS is TLS)",
                field="AUTHZ_TLS_CLIENT_CA",
                value=self.tls_client_ca,
            )
        if self.tls_client_map and not self.tls_client_ca:
            raise InvalidArgument(
                "AUTHZ_TLS_CLIENT_MAP needs AUTHZ_TLS_CLIENT_CA: only verified certificates map",
                field="AUTHZ_TLS_CLIENT_MAP",
                value=self.tls_client_map,
            )
        if self.plaintext and self.tls_cert:
            raise InvalidArgument(
                "AUTHZ_PLAINTEXT contradicts AUTHZ_TLS_CERT: choose one",
                field="AUTHZ_PLAINTEXT",
                value=True,
            )
        if self.replica_urls and (self.embedded or self.database_url.startswith("memory:")):
            raise InvalidArgument(
                "AUTHZ_DATABASE_REPLICA_URLS needs AUTHZ_DATABASE_URL naming their primary",
                field="AUTHZ_DATABASE_REPLICA_URLS",
                value="",  # URLs may hold passwords: not echoed
            )
        for url in self.replica_urls:
            problem = _postgres_url_problem(url)
            if problem is not None:
                # Accepted, it would fail every probe, never naming the setting.
                raise InvalidArgument(
                    f"AUTHZ_DATABASE_REPLICA_URLS: `{echo(_redacted(url))}` {problem}"
                    " (postgresql://user@host:port/database)",
                    field="AUTHZ_DATABASE_REPLICA_URLS",
                    value="",  # URLs may hold passwords: not echoed
                )
        if self.previous_public_keys and not self.log_signing_key:
            raise InvalidArgument(
                "AUTHZ_LOG_PREVIOUS_PUBLIC_KEYS needs AUTHZ_LOG_SIGNING_KEY: they verify, "
                "next to its public key, a log the server signs",
                field="AUTHZ_LOG_PREVIOUS_PUBLIC_KEYS",
                value=self.log_previous_public_keys,
            )
        self._check_max_watches()
        if self.max_caveat_bytes > _MAX_CAVEAT_BYTES_CEILING:
            raise InvalidArgument(
                f"{setting_name('max_caveat_bytes')} must be at most "
                f"{_MAX_CAVEAT_BYTES_CEILING}, not `{self.max_caveat_bytes}`: the CEL "
                "parser recurses once per member access, and a longer chain can overflow "
                "its native stack and end the process",
                field="max_caveat_bytes",
                value=self.max_caveat_bytes,
            )

    def _check_ranges(self) -> None:
        for name, allowed in _RANGES.items():
            value = getattr(self, name)
            if not allowed.holds(value):
                raise InvalidArgument(
                    f"{setting_name(name)} must be {allowed.describe()}, not `{_shown(value)}`",
                    field=name,
                    value=value,
                )
        if self.db_pool_min > self.db_pool_max:
            raise InvalidArgument(
                f"{setting_name('db_pool_min')} ({self.db_pool_min}) must not exceed "
                f"{setting_name('db_pool_max')} ({self.db_pool_max})",
                field="db_pool_min",
                value=self.db_pool_min,
            )

    def _check_max_watches(self) -> None:
        """Watches must leave room for every other call under gRPC's cap: a server full
        of watches refuses everything else."""
        if self.max_watches != 0 and not 0 < self.max_watches < self.max_concurrent_rpcs:
            raise InvalidArgument(
                f"{setting_name('max_watches')} must be at least 1 and less than "
                f"{setting_name('max_concurrent_rpcs')} ({self.max_concurrent_rpcs}), "
                f"or 0 for a quarter of it, not `{self.max_watches}`: open watches "
                "hold their slots, and calls other than watches need some",
                field="max_watches",
                value=self.max_watches,
            )

    @property
    def watch_limit(self) -> int:
        """The most watches the server keeps open (`max_watches`, or its default)."""
        return self.max_watches or max(1, self.max_concurrent_rpcs // 4)

    @property
    def embedded(self) -> bool:
        """True when no database URL is set: start an embedded PostgreSQL in data_dir."""
        return not self.database_url

    @property
    def replica_urls(self) -> tuple[str, ...]:
        return tuple(u.strip() for u in self.database_replica_urls.split(",") if u.strip())

    @property
    def decision_log_dir(self) -> Path:
        """Where the decision log goes: `log_dir`, else `decisions` in the data directory,
        so that `--data-dir` alone moves all of a server's state."""
        return self.log_dir if self.log_dir is not None else self.data_dir / "decisions"

    @property
    def previous_public_keys(self) -> tuple[Path, ...]:
        return tuple(Path(p.strip()) for p in self.log_previous_public_keys.split(",") if p.strip())

    @property
    def redact_paths(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.log_redact.split(",") if p.strip())


def _postgres_url_problem(url: str) -> str | None:
    """Why asyncpg cannot use `url` whatever the server (None: it can try)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed on access: out of range or not a number raises
    except ValueError as exc:
        return f"is not a valid URL: {str(exc).lower()}"
    if parts.scheme not in ("postgresql", "postgres"):
        return "is not a postgresql:// URL"
    return None


def _redacted(url: str) -> str:
    """`url` with its password, in the user part or as a parameter, shown as ***."""
    url = re.sub(r"(://[^/?#]*?:)[^/?#]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


def _convert(name: str, kind: Any, raw: str) -> Any:
    try:
        if kind in (bool, "bool"):
            lowered = raw.strip().lower()
            if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(raw)
            return lowered in ("1", "true", "yes", "on")
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path", "Path | None"):
            return Path(raw)
    except ValueError:
        raise InvalidArgument(
            f"setting `{echo(name)}` has invalid value `{echo(raw)}`", field=name, value=raw
        ) from None
    return raw


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then environment, then explicit overrides (flags); None overrides are
    ignored. Checked once, on the result: a flag may complete what the environment began
    (the TLS key beside an AUTHZ_TLS_CERT) or replace a value of it that would be refused,
    and an environment variable a flag replaces is not even read."""
    env = os.environ if environ is None else environ
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        var = f.metadata.get("env")
        if var and var in env and f.name not in flags:
            values[f.name] = _convert(var, f.type, env[var])
    return Settings(**values, **flags)
