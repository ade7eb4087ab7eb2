"""`authz serve`: run the gRPC server, in one or several worker processes.

Python runs one thread of Python at a time, so using every core takes processes: each
worker is a full server (own pool, cache and decision-log stream) bound to the same
port with SO_REUSEPORT, and the kernel spreads connections across them. The parent
prepares the database once (embedded start, migrations) and supervises the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from typing import Any

from authz_service.cli.files import unreadable
from authz_service.config import Settings, load_settings, setting_name
from authz_service.errors import AuthzError, InvalidArgument, Unavailable, echo

__all__ = ["register"]

log = logging.getLogger("authz.serve")


def register(sub: Any) -> None:
    parser = sub.add_parser("serve", help="run the gRPC server")
    parser.add_argument("--listen", help="host:port to bind (port 0 picks a free port)")
    parser.add_argument(
        "--workers", type=int, help="worker processes (default 1; 0 = one per core)"
    )
    parser.add_argument(
        "--database-url", help="PostgreSQL URL; unset = embedded; memory:// for tests"
    )
    parser.add_argument(
        "--data-dir",
        help="local state: the embedded database and, unless --log-dir, the decision log",
    )
    parser.add_argument("--demo", action="store_true", default=None, help="load the demo model")
    parser.add_argument("--decision-log", dest="log_mode", choices=["durable", "buffered", "off"])
    parser.add_argument("--log-dir", help="decision log directory (default DATA_DIR/decisions)")
    parser.add_argument("--signing-key", dest="log_signing_key", help="Ed25519 PEM for checkpoints")
    parser.add_argument("--no-migrate", dest="migrate_on_start", action="store_false", default=None)
    parser.add_argument(
        "--gateway-config", help="YAML mapping HTTP requests to checks for Envoy ext_authz"
    )
    parser.add_argument(
        "--scim-listen", help="host:port of the SCIM 2.0 HTTP endpoint (docs/identity.md)"
    )
    parser.add_argument(
        "--console",
        dest="console_listen",
        nargs="?",
        const="127.0.0.1:8080",
        help="serve the web console on host:port (default 127.0.0.1:8080; docs/console.md)",
    )
    parser.add_argument(
        "--no-auth",
        dest="auth",
        action="store_false",
        default=None,
        help="trust every caller, no API keys (local development only; logs a warning)",
    )
    parser.add_argument("--tls-cert", help="PEM server certificate (re-read when it changes)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca", help="PEM CA that must have signed every client's certificate (mTLS)"
    )
    parser.add_argument(
        "--tls-client-map", help="YAML: client certificate subject or SAN -> tenant and scopes"
    )
    parser.add_argument(
        "--plaintext",
        action="store_true",
        default=None,
        help="allow listening beyond loopback without TLS (logs a warning)",
    )
    parser.set_defaults(handler=_serve)


def _settings(args: argparse.Namespace) -> Settings:
    from pathlib import Path

    overrides: dict[str, Any] = {
        "listen": args.listen,
        "database_url": args.database_url,
        "data_dir": Path(args.data_dir) if args.data_dir else None,
        "demo": args.demo,
        "log_mode": args.log_mode,
        "log_dir": Path(args.log_dir) if args.log_dir else None,
        "log_signing_key": args.log_signing_key,
        "migrate_on_start": args.migrate_on_start,
        "gateway_config": args.gateway_config,
        "scim_listen": args.scim_listen,
        "console_listen": args.console_listen,
        "auth": args.auth,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "tls_client_ca": args.tls_client_ca,
        "tls_client_map": args.tls_client_map,
        "plaintext": args.plaintext,
    }
    if args.workers is not None:
        overrides["workers"] = args.workers or (os.cpu_count() or 1)
    return load_settings(overrides)


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _check_start(settings)
    _check_listen(settings.listen)
    if not settings.tls_cert:  # refused plaintext fails here, before the database starts
        from authz_service.api.tls import plaintext_allowed

        plaintext_allowed(settings.listen, plaintext=settings.plaintext)
    _configure_logging(settings)
    if settings.workers == 1:
        return _run_loop(run_worker(settings, 0))
    return _supervise(settings)


def _check_start(settings: Settings) -> None:
    """Refuse, in one line naming the variable (and flag), what the settings' own checks
    cannot see: files, names of the model, several workers without what they share."""
    from authz_service.decisionlog.redact import parse_path
    from authz_service.model import RELATION_RE, TYPE_RE

    for name, path in _files(settings):
        _check_file(name, path)
    for name, pattern in (
        ("scim_user_type", TYPE_RE),
        ("scim_group_type", TYPE_RE),
        ("scim_member_relation", RELATION_RE),
    ):
        value = getattr(settings, name)
        if not pattern.fullmatch(value):
            kind = "relation" if name == "scim_member_relation" else "type"
            raise InvalidArgument(
                f"{setting_name(name)}: `{echo(value)}` is not a valid {kind} name",
                field=name,
                value=value,
            )
    for redacted in settings.redact_paths:
        try:
            parse_path(redacted)
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"{setting_name('log_redact')}: {exc.message}", field="log_redact", value=redacted
            ) from None
    if settings.workers > 1:
        if settings.database_url == "memory://":
            raise InvalidArgument(
                f"{setting_name('workers')} {settings.workers}: memory:// cannot be shared by "
                "several workers; use --workers 1 or a PostgreSQL database",
                field="workers",
                value=settings.workers,
            )
        if settings.listen.endswith(":0"):
            raise InvalidArgument(
                f"{setting_name('workers')} {settings.workers}: several workers need a fixed "
                f"port to share, not `{echo(settings.listen)}`; --listen host:PORT",
                field="workers",
                value=settings.workers,
            )


def _files(settings: Settings) -> Iterator[tuple[str, str]]:
    """Every file the server reads at start, with the setting that names it."""
    for name in ("tls_cert", "tls_key", "tls_client_ca", "tls_client_map", "gateway_config"):
        if getattr(settings, name):
            yield name, getattr(settings, name)
    if settings.log_signing_key:
        yield "log_signing_key", settings.log_signing_key
    for path in settings.previous_public_keys:
        yield "log_previous_public_keys", str(path)


def _check_file(name: str, path: str) -> None:
    """A file setting must name a readable regular file: a FIFO or a device would block
    the start in a read that not even Ctrl-C ends."""
    problem = unreadable(path)
    if problem is None:
        return
    raise InvalidArgument(
        f"{setting_name(name)}: cannot read `{echo(path)}`: {problem}", field=name, value=path
    )


def _check_listen(listen: str) -> None:
    """Fail in one line, before the database starts, if `listen` cannot be bound.

    A probe socket binds the address and lets go. Like gRPC it sets SO_REUSEADDR (a
    socket in TIME_WAIT is no conflict) but not SO_REUSEPORT, so it also refuses a port
    that another server shares among its own workers. Port 0 is always free.
    """
    host, _, port = listen.rpartition(":")
    try:
        found = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, ValueError) as exc:
        raise InvalidArgument(
            f"cannot listen on `{listen}`: not host:port ({exc})", field="listen", value=listen
        ) from None
    if int(port) == 0:
        return
    family, kind, proto, _, address = found[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise Unavailable(f"cannot listen on {listen}: {reason}") from None


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Serve on uvloop where it is installed: measured here, it lifts a bare grpc.aio
    server's throughput by about a fifth over the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def run_worker(settings: Settings, worker: int) -> int:
    from authz_service.app import App

    try:
        app = await App.start(settings, worker=worker)
    except OSError as exc:
        # A file or directory the server needs (data, decision log, TLS) is unusable:
        # one line and exit status 2, like every other reason a server cannot start.
        where = f" `{exc.filename}`" if exc.filename else ""
        raise Unavailable(f"cannot start: {exc.strerror or exc}{where}") from None
    host = settings.listen.rsplit(":", 1)[0]
    transport = "mTLS" if settings.tls_client_ca else "TLS" if settings.tls_cert else "plaintext"
    print(f"authz: listening on {host}:{app.port} ({transport}, worker {worker})", flush=True)
    if app.console is not None:
        scheme = "https" if settings.tls_cert else "http"
        console_host = settings.console_listen.rsplit(":", 1)[0]
        print(f"authz: console at {scheme}://{console_host}:{app.console.port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if await _log_broke_first(stop, app):
        # Every call fails from now on and only a new writer recovers the log (it cuts
        # the torn tail): end, so that the supervisor starts the worker again.
        log.error("worker %d stopping: its decision log failed (see above)", worker)
        with contextlib.suppress(AuthzError):  # the writer's close repeats the failure
            await app.stop()
        print(f"error: worker {worker}: decision log write failed", file=sys.stderr, flush=True)
        return 2
    log.info("worker %d shutting down: draining calls", worker)
    await app.stop()
    return 0


async def _log_broke_first(stop: asyncio.Event, app: Any) -> bool:
    """Wait for `stop`, or for the decision log to fail; whether it was the log."""
    if app.writer is None:
        await stop.wait()
        return False
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(app.writer.wait_broken())]
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return waits[1] in done and not stop.is_set()


def _configure_logging(settings: Settings) -> None:
    from authz_service.telemetry import configure_logging

    configure_logging(settings.log_level, json=settings.log_format == "json", stream=sys.stderr)


def _worker_main(settings: Settings, worker: int) -> None:
    # Spawned workers start with a fresh interpreter: logging must be set up again.
    _configure_logging(settings)
    try:
        sys.exit(_run_loop(run_worker(settings, worker)))
    except AuthzError as exc:
        print(f"error: worker {worker}: {exc.message}", file=sys.stderr, flush=True)
        sys.exit(2)


def _prepare_database(settings: Settings) -> tuple[Settings, Any]:
    """Start the embedded server and migrate once, before any worker exists. The parent
    holds the returned resources (the embedded server) for as long as the workers run."""
    from authz_service.app import Resources, prepare_database

    resources = Resources()
    dsn = asyncio.run(prepare_database(settings, resources))
    return replace(settings, database_url=dsn, migrate_on_start=False), resources


def _supervise(settings: Settings) -> int:
    settings, resources = _prepare_database(settings)
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_worker_main, args=(replace(settings, demo=settings.demo and i == 0), i))
        for i in range(settings.workers)
    ]
    for proc in workers:
        proc.start()

    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    running = list(workers)
    while running:
        multiprocessing.connection.wait([proc.sentinel for proc in running])
        for proc in [p for p in running if not p.is_alive()]:
            running.remove(proc)
            proc.join()
            # Any worker that did not end cleanly (a start failure, a crash, a decision
            # log that failed) is an error, never status 1, which means a negative answer.
            status = status or (2 if proc.exitcode else 0)
            if not stopping:
                # Ended by itself: this process is what a container runtime or systemd
                # sees and restarts, and a worker's log recovers only in a new writer.
                # So the server ends as a whole; the other workers drain first.
                log.error(
                    "worker %d ended (status %s): stopping the server",
                    workers.index(proc),
                    proc.exitcode,
                )
                forward(signal.SIGTERM, None)
    asyncio.run(resources.close())
    return status
