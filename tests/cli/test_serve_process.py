"""`authz serve` as an operator runs it: a separate process with the embedded database.

Each test starts its servers as subprocesses (with no AUTHZ_* variables from the
developer's environment) and stops everything it started by pid at the end, including
an embedded PostgreSQL a killed server left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz_service.api.gen.authz.v1 import tenants_pb2, tenants_pb2_grpc
from authz_service.cli import main
from tests.pg import FreshDatabase

pytestmark = [
    pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set"),
    pytest.mark.timeout(240),
]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # the first start runs initdb (and, as root, may create a user)


@pytest.fixture
def work() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root, pgserver opens every parent of the data
    # directory to other users (o+rx); that should only touch a directory of ours.
    with tempfile.TemporaryDirectory(prefix="authz-serve-") as root:
        yield Path(root)


@dataclass
class Started:
    """Every process a test started, directly or not, to be stopped by pid at the end."""

    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    postmasters: set[int] = field(default_factory=set)


@pytest.fixture
async def started() -> AsyncIterator[Started]:
    record = Started()
    yield record
    for proc in record.processes:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    for pid in record.postmasters:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        assert await _gone(pid), f"embedded PostgreSQL {pid} did not stop"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHZ_")}
    # The servers run in another directory: make them import this checkout's code.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def _launch(started: Started, cwd: Path, *args: str) -> asyncio.subprocess.Process:
    """`authz serve --no-auth ARGS`, its output piped, stopped by the test's end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "authz_service", "serve", "--no-auth", *args,
        cwd=cwd, env=_environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    started.processes.append(proc)
    return proc


async def _serve(started: Started, cwd: Path, *args: str) -> tuple[asyncio.subprocess.Process, int]:
    """Start `authz serve ARGS`; return the process and its port once it listens."""
    proc = await _launch(started, cwd, *args)
    assert proc.stdout is not None
    async with asyncio.timeout(START_TIMEOUT):
        line = (await proc.stdout.readline()).decode()
    match = re.search(r"listening on [0-9.]+:(\d+)", line)
    if match is None:
        assert proc.stderr is not None
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        err = (await proc.stderr.read()).decode()
        raise AssertionError(f"server did not start: {line!r}\n{err[-3000:]}")
    return proc, int(match.group(1))


async def _refused(started: Started, cwd: Path, *args: str) -> tuple[int | None, bytes, bytes]:
    """Run `authz serve ARGS`, which must not start, to its end: status, stdout, stderr."""
    proc = await _launch(started, cwd, *args)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    return proc.returncode, out, err


async def _serving(port: int) -> bool:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _postmaster(data_dir: Path) -> int:
    """The pid of the embedded PostgreSQL of `data_dir` (first line of postmaster.pid)."""
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split("\n", 1)[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _gone(pid: int, within: float = 30.0) -> bool:
    """Whether process `pid` ends within `within` seconds."""
    # Not our child (pg_ctl detaches it), so there is nothing to wait on but its pid.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while True:
                if not _alive(pid):
                    return True
                await asyncio.sleep(0.05)
    return not _alive(pid)


async def _stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        return await proc.wait()


async def test_a_start_after_kill_9_recovers_the_embedded_database(
    work: Path, started: Started
) -> None:
    data = work / "data"
    first, _ = await _serve(started, work, "--data-dir", str(data), "--listen", "127.0.0.1:0")
    postmaster = _postmaster(data)
    started.postmasters.add(postmaster)
    first.kill()  # SIGKILL: no cleanup of any kind
    await first.wait()
    assert _alive(postmaster)  # the database outlives its killed user

    second, port = await _serve(started, work, "--data-dir", str(data), "--listen", "127.0.0.1:0")
    assert await _serving(port)
    assert await _stop(second) == 0
    # The clean stop of the last user stops the database: the killed one no longer
    # counts as a user (before, it kept it running for good).
    assert await _gone(postmaster), "the database outlived its last user's clean stop"
    assert not (data / "pgdata" / "postmaster.pid").exists()

    third, port = await _serve(started, work, "--data-dir", str(data), "--listen", "127.0.0.1:0")
    started.postmasters.add(_postmaster(data))
    assert await _serving(port)
    assert await _stop(third) == 0


async def test_data_dir_holds_everything_so_two_servers_run_side_by_side(
    work: Path, started: Started
) -> None:
    servers = []
    for name in ("one", "two"):
        data = work / name
        proc, port = await _serve(started, work, "--data-dir", str(data), "--listen", "127.0.0.1:0")
        started.postmasters.add(_postmaster(data))
        servers.append((proc, port, data))
    for _, port, data in servers:
        assert await _serving(port)
        assert (data / "pgdata" / "PG_VERSION").exists()
        assert (data / "decisions" / ".writer.lock").exists()  # the decision log
    # `authz keys` logs key changes next to the server's log, in the same data directory.
    keys = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "authz_service", "keys", "create", "--tenant", "acme",
        "--create-tenant", "--scopes", "check", "--data-dir", str(work / "one"),
        cwd=work, env=_environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    started.processes.append(keys)
    async with asyncio.timeout(60):
        _, err = await keys.communicate()
    assert keys.returncode == 0, err.decode()
    assert list((work / "one" / "decisions-admin" / "acme").glob("*.jsonl"))
    for proc, _, _ in servers:
        assert await _stop(proc) == 0
    assert not (work / ".authz").exists()  # nothing went to the working directory


async def test_a_port_in_use_is_one_line_before_the_database_starts(
    work: Path, started: Started
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, out, err = await _refused(
            started, work, "--data-dir", str(work / "data"), "--listen", f"127.0.0.1:{port}"
        )
    assert status == 2
    assert err.decode() == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert out == b""
    assert not (work / "data" / "pgdata").exists()  # the database was never started


def test_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    for status in ("0 ", "1 ", "2 ", "3 ", "130 "):
        assert f"\n  {status}" in out


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with FreshDatabase() as dsn:
        yield dsn


@pytest.mark.parametrize("workers", [1, 2])
async def test_an_unusable_log_directory_is_one_line_and_status_2(
    work: Path, started: Started, pg_dsn: str, workers: int
) -> None:
    """Status 2 is "the server cannot start" (README); 1 would read as a negative answer,
    and a traceback is no message for an operator."""
    (work / "a-file").write_text("not a directory\n")
    log_dir = work / "a-file" / "decisions"
    env = _environment() | {"AUTHZ_LOG_MODE": "buffered", "AUTHZ_LOG_DIR": str(log_dir)}
    with socket.socket() as probe:  # several workers need a fixed port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "authz_service", "serve", "--no-auth",
        "--database-url", pg_dsn, "--workers", str(workers),
        "--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "data"),
        cwd=work, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    started.processes.append(proc)
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert errors, text
    assert all(f"Not a directory `{log_dir}" in line for line in errors), errors
    assert out == b""


async def test_a_worker_whose_log_failed_says_not_serving_and_exits_2(
    work: Path, started: Started, pg_dsn: str
) -> None:
    """After a failed write or fsync the decision log stops for good (docs/decision-log.md)
    and every call answers UNAVAILABLE; only a restart recovers it. The worker went on
    reporting SERVING and never ended, so nothing restarted it."""
    log_dir = work / "decisions"
    log_dir.mkdir()
    (log_dir / "acme").write_bytes(b"")  # a file where tenant acme's stream must go
    proc, port = await _serve(
        started, work, "--database-url", pg_dsn, "--decision-log", "durable",
        "--log-dir", str(log_dir), "--data-dir", str(work / "data"), "--listen", "127.0.0.1:0",
    )  # fmt: skip
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        statuses = health.Watch(health_pb2.HealthCheckRequest(), timeout=60)
        assert (await statuses.read()).status == health_pb2.HealthCheckResponse.SERVING
        tenants = tenants_pb2_grpc.TenantServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # its admin record fails
            await tenants.CreateTenant(tenants_pb2.CreateTenantRequest(name="acme"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # Committed before its record: the error must not read as "nothing happened".
        assert "the change was applied" in (refused.value.details() or "")
        changed = await statuses.read()
        assert changed.status == health_pb2.HealthCheckResponse.NOT_SERVING
    async with asyncio.timeout(60):
        assert await proc.wait() == 2
    assert proc.stderr is not None
    text = (await proc.stderr.read()).decode()
    assert "decision log write failed" in text
    assert text.splitlines()[-1] == "error: worker 0: decision log write failed"


async def test_a_console_port_in_use_is_one_line(work: Path, started: Started) -> None:
    # The gRPC server had started when the console's bind failed, and was left to its
    # finalizer: "Exception ignored in: <function Server.__del__>" and a traceback.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = await _refused(
            started, work, "--database-url", "memory://", "--listen", "127.0.0.1:0",
            "--data-dir", str(work / "data"), "--console", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert status == 2
    lines = [line for line in err.decode().splitlines() if not line.startswith("{")]
    assert len(lines) == 1, err.decode()
    assert lines[0].startswith("error: cannot start: could not bind the console listener")


async def test_with_workers_one_whose_log_failed_ends_the_server_with_status_2(
    work: Path, started: Started, pg_dsn: str
) -> None:
    """A worker whose decision log failed exits 2 for its supervisor to start it again;
    with several workers that supervisor is this process's, which never restarted it:
    the server went on with a worker fewer, healthy by the others' answers."""
    log_dir = work / "decisions"
    for worker in (0, 1):  # whichever worker takes the call, its stream must fail
        (log_dir / f"worker-{worker}").mkdir(parents=True)
        (log_dir / f"worker-{worker}" / "acme").write_bytes(b"")
    with socket.socket() as probe:  # several workers need a fixed port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc, _ = await _serve(
        started, work, "--database-url", pg_dsn, "--decision-log", "durable", "--workers", "2",
        "--log-dir", str(log_dir), "--data-dir", str(work / "data"), "--listen", f"127.0.0.1:{port}",
    )  # fmt: skip
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        tenants = tenants_pb2_grpc.TenantServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tenants.CreateTenant(tenants_pb2.CreateTenantRequest(name="acme"), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    async with asyncio.timeout(60):  # fails the test if the server goes on
        assert await proc.wait() == 2
