"""CheckBulk's handler in process: the service's own Python per call, without gRPC.

    python benchmarks/bulk_inproc.py [--calls 2000] [--items 100] [--log off|durable]
                                     [--profile] [--rounds 5]

Starts an App over the memory store (staleness window of a minute, so every item is a
cache hit), writes 100 `document#viewer@user` relationships (half the items are
allowed), and calls `PermissionsServicer.CheckBulk` directly, request bytes in and
response bytes out (parse and serialize included, as gRPC would do them), with the
interceptors and the transport left out. Reports CPU µs per call (median of rounds) and
per item. `--profile` prints a cProfile of one round by own time.

For counts that do not move with the machine's load, `--callgrind N` makes N calls
inside `itertools.starmap`, driving each handler coroutine by hand (a call answered
from the cache never waits), and callgrind counts exactly those:

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \
        --callgrind-out-file=cg.out .venv/bin/python benchmarks/bulk_inproc.py \
        --callgrind 200
    # instructions per call: the `summary:` of cg.out divided by 200
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import itertools
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    relationships_pb2,
    relationships_pb2_grpc,
    schema_pb2,
    schema_pb2_grpc,
    tenants_pb2,
    tenants_pb2_grpc,
)
from authz_service.api.permissions import PermissionsServicer
from authz_service.app import MEMORY_URL, App
from authz_service.config import Settings

TENANT = "bench"
SCHEMA = """
definition user {}
definition document {
    relation viewer: user
    permission view = viewer
}
"""


class _Context:
    """The part of a grpc.aio ServicerContext the handler reads on success."""

    def time_remaining(self) -> float | None:
        return None


def _obj(kind: str, ident: str) -> Any:
    return core_pb2.ObjectReference(object_type=kind, object_id=ident)


async def _prepare(port: int, items: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await tenants_pb2_grpc.TenantServiceStub(channel).CreateTenant(
            tenants_pb2.CreateTenantRequest(name=TENANT)
        )
        await schema_pb2_grpc.SchemaServiceStub(channel).WriteSchema(
            schema_pb2.WriteSchemaRequest(schema=SCHEMA)
        )
        touch = relationships_pb2.RelationshipUpdate.OPERATION_TOUCH
        updates = [
            relationships_pb2.RelationshipUpdate(
                operation=touch,
                relationship=core_pb2.Relationship(
                    resource=_obj("document", f"d{i}"),
                    relation="viewer",
                    subject=core_pb2.SubjectReference(object=_obj("user", f"u{i}")),
                ),
            )
            for i in range(0, items, 2)
        ]
        await relationships_pb2_grpc.RelationshipsServiceStub(channel).WriteRelationships(
            relationships_pb2.WriteRelationshipsRequest(tenant=TENANT, updates=updates)
        )


def _request(items: int) -> bytes:
    return permissions_pb2.CheckBulkRequest(
        tenant=TENANT,
        items=[
            permissions_pb2.CheckBulkRequestItem(
                resource=_obj("document", f"d{i}"),
                permission="view",
                subject=core_pb2.SubjectReference(object=_obj("user", f"u{i}")),
            )
            for i in range(items)
        ],
    ).SerializeToString()


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            listen="127.0.0.1:0",
            database_url=MEMORY_URL,
            data_dir=Path(tmp),
            migrate_on_start=False,
            log_mode=args.log,
            log_dir=Path(tmp) / "decisions",
            auth=False,
            max_staleness_ms=60_000,
        )
        app = await App.start(settings)
        try:
            await _prepare(app.port, args.items)
            await _run(app, args)
        finally:
            await app.stop(grace=1.0)


async def _run(app: App, args: argparse.Namespace) -> None:
    servicer = PermissionsServicer(app.permissions, default_deadline_s=3600.0)  # valgrind is slow
    raw = _request(args.items)
    parse = permissions_pb2.CheckBulkRequest.FromString
    context: Any = _Context()

    async def calls(n: int) -> None:
        for _ in range(n):
            reply = await servicer.CheckBulk(parse(raw), context)
            reply.SerializeToString()

    reply = await servicer.CheckBulk(parse(raw), context)  # primes the cache
    allowed = sum(i.result.decision == core_pb2.DECISION_ALLOWED for i in reply.items)
    if allowed != (args.items + 1) // 2:
        raise SystemExit(f"expected {(args.items + 1) // 2} allowed, got {allowed}")
    await calls(min(args.calls, 200))  # warm up
    if args.callgrind:
        _counted(lambda: servicer.CheckBulk(parse(raw), context), args.callgrind)
        return
    per_call = []
    for _ in range(args.rounds):
        profiler = cProfile.Profile() if args.profile else None
        started = time.thread_time()
        if profiler is not None:
            profiler.enable()
        await calls(args.calls)
        if profiler is not None:
            profiler.disable()
        per_call.append((time.thread_time() - started) / max(args.calls, 1) * 1e6)
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    median = statistics.median(per_call)
    print(
        f"CheckBulk({args.items}) in process, log {args.log}: {median:.0f} µs per call "
        f"(rounds {', '.join(f'{v:.0f}' for v in per_call)}), "
        f"{median / args.items:.2f} µs per item"
    )


def _counted(call: Callable[[], Coroutine[Any, Any, Any]], n: int) -> None:
    """`n` calls, each run to its end at once, all inside one C function (starmap_next)
    that callgrind can switch counting on and off around."""

    def one() -> None:
        try:
            call().send(None)
        except StopIteration as done:
            done.value.SerializeToString()
            return
        raise SystemExit("the handler waited: not every item was answered from the cache")

    collections.deque(itertools.starmap(one, itertools.repeat((), n)), maxlen=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--log", choices=["off", "durable"], default="off")
    p.add_argument("--profile", action="store_true", help="cProfile each round")
    p.add_argument("--callgrind", type=int, default=0, metavar="N", help="see above")
    asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
