"""The ceiling of the Check benchmark: a grpc.aio server that does nothing but gRPC.

It serves `/authz.v1.PermissionsService/Check` with the real CheckRequest and
CheckResponse types, parsing each request and serializing one fixed response built from
a real server's answer, so every byte on the wire and every (de)serialization step is
the same as the service's and only the decision logic is missing. It uses the service's
process model: one process for one worker, otherwise spawned processes sharing the port
through SO_REUSEPORT, each with the default asyncio loop and the same server options
(`authz_service.api.server.build_server`).

    python benchmarks/echo_server.py --listen 127.0.0.1:PORT --workers 2 --response HEX

prints `echo: listening on HOST:PORT (worker i)` per worker, like `authz serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authz_service.api.gen.authz.v1 import permissions_pb2

__all__ = ["main", "serve"]

METHOD_SERVICE = "authz.v1.PermissionsService"

# The options and concurrency cap of authz_service.api.server.build_server: the ceiling
# must not be a differently tuned server.
SERVER_OPTIONS = [
    ("grpc.so_reuseport", 1),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]
MAX_CONCURRENT_RPCS = 512


async def serve(listen: str, response: bytes, worker: int, reuse_port: bool) -> None:
    fixed = permissions_pb2.CheckResponse.FromString(response)

    async def check(request: permissions_pb2.CheckRequest, context: Any) -> Any:
        return fixed

    handlers = {
        "Check": grpc.unary_unary_rpc_method_handler(
            check,
            request_deserializer=permissions_pb2.CheckRequest.FromString,
            response_serializer=permissions_pb2.CheckResponse.SerializeToString,
        )
    }
    options = [
        (key, (1 if reuse_port else 0) if key == "grpc.so_reuseport" else value)
        for key, value in SERVER_OPTIONS
    ]
    server = grpc.aio.server(maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS, options=options)
    # Registered like the generated add_*Servicer_to_server does, so method lookup is
    # the same fast path as the service's.
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(METHOD_SERVICE, handlers),)
    )
    server.add_registered_method_handlers(METHOD_SERVICE, handlers)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"could not bind {listen}")
    await server.start()
    host = listen.rsplit(":", 1)[0]
    print(f"echo: listening on {host}:{port} (worker {worker})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """The same event loop the service runs on (authz_service.cli.serve): uvloop when it
    is installed, so the ceiling is not handicapped against the server it bounds."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _worker(listen: str, response: bytes, worker: int) -> None:
    _run(serve(listen, response, worker, True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--response", required=True, help="serialized CheckResponse, hex")
    args = parser.parse_args(argv)
    response = bytes.fromhex(args.response)
    if args.workers == 1:
        _run(serve(args.listen, response, 0, False))
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(args.listen, response, i)) for i in range(args.workers)
    ]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
