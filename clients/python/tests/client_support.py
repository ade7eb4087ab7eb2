"""Test support: the real server in a subprocess, and a recorder of client calls.

The server prints `authz: listening on HOST:PORT (plaintext, worker 0)` once it accepts calls; we
read its stdout on a thread and wait for that line with a timeout (never a fixed sleep).
Python comes from AUTHZ_PYTHON, else this interpreter; the server package from the
repository root, which is the working directory.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import grpc

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVE_FLAGS = (
    *("--database-url", "memory://"),
    *("--workers", "1"),
    *("--decision-log", "off"),
    "--demo",
    "--no-auth",
)
_LISTENING = re.compile(r"^authz: listening on (\S+:\d+) \((?:plaintext|TLS|mTLS), worker 0\)$")


class ServerProcess:
    """`python -m authz_service serve` with the demo data: on memory:// unless `flags`
    say otherwise (later flags win), with `env` added to the environment."""

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        flags: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.listen = listen
        self.flags = flags
        self.env = env or {}
        self.target = ""
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed in stop()
        self._data = tempfile.TemporaryDirectory(prefix="authz-client-test-")

    def start(self, timeout: float = 60.0) -> str:
        """Start the server; return its `host:port` once it is listening."""
        python = os.environ.get("AUTHZ_PYTHON", sys.executable)
        env = {
            **os.environ,
            "AUTHZ_DATA_DIR": self._data.name,
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        command = ["serve", "--listen", self.listen, *SERVE_FLAGS, *self.flags]
        self._proc = subprocess.Popen(
            [python, "-m", "authz_service", *command],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self._proc.stdout is not None
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()
        try:
            self.target = self._wait_for_listening(timeout)
        except BaseException:
            self.stop()
            raise
        return self.target

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:  # keeps draining after the line we wait for
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _wait_for_listening(self, timeout: float) -> str:
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(
                    f"server did not report listening within {timeout}s\n{self.stderr()}"
                ) from None
            if line is None:
                raise RuntimeError(f"server exited before listening\n{self.stderr()}")
            match = _LISTENING.match(line)
            if match:
                return match[1]

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful drain), then wait; kill only if it does not stop in time."""
        code: int | None = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                code = self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        elif self._proc is not None:
            code = self._proc.returncode
        self._stderr.close()
        self._data.cleanup()
        return code


class Recorder(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]  # generic only in grpc-stubs
    """An aio client interceptor recording every attempt: method, request, status code.

    Each retry of a call passes through the interceptor again, so `codes` counts attempts.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.codes: list[grpc.StatusCode] = []
        self.failed = asyncio.Event()

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Awaitable[Any]],
        client_call_details: Any,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        self.requests.append((method.decode() if isinstance(method, bytes) else method, request))
        call = await continuation(client_call_details, request)
        code = await call.code()
        self.codes.append(code)
        if code != grpc.StatusCode.OK:
            self.failed.set()
        return call

    def last(self, method_suffix: str) -> Any:
        return next(r for m, r in reversed(self.requests) if m.endswith(method_suffix))


def free_port() -> int:
    """A port nothing listens on (free when asked; nothing here binds it again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
