"""A server killed with SIGKILL during a burst of checks in durable mode: every decision
id a client received is in the log, and the log verifies.

A kill can tear the last line of a segment (a write the kernel had only partly taken).
No caller was told about that record: durable appends resolve after the fsync. The
verifier reports such a line as a warning, readers skip it, and the next writer on the
root cuts it off; the second half of the test shows each of these on a torn line.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import grpc

from authz_service.decisionlog.layout import list_segments
from authz_service.service.log_reader import iter_log
from tests.api.helpers import Api

from .helpers import (
    QUESTIONS,
    SCHEMA,
    LogSetup,
    channel_to,
    check,
    run_cli,
    running,
    setup_world,
)

CLIENTS = 32
KILL_AFTER = 400  # decisions received before the kill


async def _start_server(setup: LogSetup, stderr: Path) -> tuple[asyncio.subprocess.Process, int]:
    env = {**os.environ, "AUTHZ_LOG_CHECKPOINT_S": "0.2", "AUTHZ_LOG_FORMAT": "text"}
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "authz_service", "serve",
            "--decision-log", "durable", "--log-dir", str(setup.log_dir),
            "--database-url", setup.dsn, "--listen", "127.0.0.1:0",
            "--signing-key", str(setup.private_key), "--no-migrate", "--no-auth",
            stdout=asyncio.subprocess.PIPE, stderr=err, env=env,
        )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = (await proc.stdout.readline()).decode()
    except TimeoutError:
        proc.kill()
        raise
    match = re.search(r"listening on [0-9.]+:(\d+)", line)
    assert match, f"server did not start: {line!r}; see {stderr}"
    return proc, int(match.group(1))


async def _burst(port: int, received: list[str], enough: asyncio.Event) -> int:
    """Checks from CLIENTS concurrent callers until the server dies; returns how many
    calls failed (those in flight at the kill)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        api = Api(channel)

        async def client(n: int) -> int:
            i = n
            while True:
                try:
                    made = await check(api, "acme", QUESTIONS[i % len(QUESTIONS)])
                except grpc.aio.AioRpcError:
                    return 1
                received.append(made.decision_id)
                if len(received) >= KILL_AFTER:
                    enough.set()
                i += 1

        async with asyncio.timeout(120):
            return sum(await asyncio.gather(*(client(n) for n in range(CLIENTS))))


async def test_sigkill_loses_no_received_decision(log_setup: LogSetup, tmp_path: Path) -> None:
    # The model and the data, written by a server that logs nothing.
    async with running(log_setup, log_mode="off") as app, channel_to(app) as channel:
        api = Api(channel)
        await api.write_schema(SCHEMA)
        await setup_world(api, "acme")

    proc, port = await _start_server(log_setup, tmp_path / "server.log")
    received: list[str] = []
    enough = asyncio.Event()
    burst = asyncio.create_task(_burst(port, received, enough))
    try:
        async with asyncio.timeout(120):
            await enough.wait()
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    failed_calls = await burst
    assert proc.returncode == -signal.SIGKILL
    assert failed_calls == CLIENTS  # every client was still calling when the server died

    logged = {f.stored.entry.record.decision_id for f in iter_log(log_setup.log_dir)}
    missing = set(received) - logged
    assert not missing, f"{len(missing)} received decisions are not in the log"

    status, out, _ = run_cli(
        "audit", "verify", "--log-dir", str(log_setup.log_dir),
        "--public-key", str(log_setup.public_key),
    )  # fmt: skip
    assert status == 0, out
    assert out.startswith("OK      acme")

    # A torn last line (here made by hand, as a crash mid-write would leave it) ...
    (_, newest), *_ = reversed(list_segments(log_setup.log_dir / "acme"))
    content = newest.read_bytes()
    whole = content[: content.rfind(b"\n") + 1]  # the kill may have torn a line already
    newest.write_bytes(whole + b'{"action":"view","actor":nu')
    status, out, _ = run_cli(
        "audit", "verify", "--log-dir", str(log_setup.log_dir),
        "--public-key", str(log_setup.public_key),
    )  # fmt: skip
    # ... is a warning, not a failure: no caller was ever told about it ...
    assert status == 0, out
    assert f"warning: {newest.name}:" in out
    assert "incomplete last line" in out
    # ... readers skip it ...
    assert {f.stored.entry.record.decision_id for f in iter_log(log_setup.log_dir)} == logged
    # ... and the next writer on the root cuts it off.
    async with running(log_setup):
        assert newest.read_bytes() == whole
    status, out, _ = run_cli(
        "audit", "verify", "--log-dir", str(log_setup.log_dir),
        "--public-key", str(log_setup.public_key),
    )  # fmt: skip
    assert status == 0, out
    assert "incomplete" not in out
