"""LookupResources over gRPC, this checkout against others, in the same rounds.

    python benchmarks/lookup_bench.py --checkout base=DIR [--scale 1m] [--rounds 3] [--page N]

One data set (benchmarks/dataset.py at `--scale`, seed 42) imported once into a fresh
database; one single-worker `authz serve` per checkout (decision log off, API keys on,
relationship index on, default deadline 300 s), all running at once, each warmed until its worker holds the
tenant in its index. Then per round, checkouts interleaved (the order flips every
round): `LookupResources(document, view)` for each sampled user, streamed whole at
minimize_latency (with `--page N`: in calls of `limit` N, each resumed from the last
result's cursor, as a client paging through it does). Per call: wall seconds, seconds to the first result, the server's CPU
seconds (utime + stime of its process tree from /proc over exactly that call) and the
results, compared with the reference evaluator (`wrong` counts calls whose allowed set
differs). Medians per checkout and user over rounds are printed as a table and written
to benchmarks/results/lookup-<date>-<time>.json. A baseline checkout needs the generated
stubs (`authz_service/api/gen`): copy them from this one if its protos are the same.
Tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import check_bench  # noqa: E402 - the benchmark's own helpers, by path
import dataset  # noqa: E402
import path_clients  # noqa: E402

DEFAULT_USERS = "7,396,2,3"  # path_bench's two, and two more (about 60k and 29k at 1m)
DEADLINE_MS = 300_000


def _serve(checkout: Path, url: str, work: Path) -> tuple[check_bench.Server, int]:
    port, metrics = check_bench.free_port(), check_bench.free_port()
    cmd = [sys.executable, "-m", "authz_service", "serve", "--database-url", url]
    cmd += ["--listen", f"127.0.0.1:{port}", "--workers", "1", "--decision-log", "off"]
    # A lookup stream is bounded as a whole by the call's deadline, at most the server's
    # default (5 s): raised here so that the slow side is measured, not cut off.
    env = check_bench.clean_env(
        AUTHZ_METRICS_LISTEN=f"127.0.0.1:{metrics}", AUTHZ_DEFAULT_DEADLINE_MS=str(DEADLINE_MS)
    )
    env["PYTHONPATH"] = str(checkout)
    # `python -m` puts the working directory first on sys.path: run in the checkout.
    server = check_bench.Server(cmd, env, 1, port, work, cwd=checkout)
    server.start()
    return server, metrics


def _stub(channel: Any) -> Any:
    from authz_service.api.gen.authz.v1 import permissions_pb2_grpc

    return permissions_pb2_grpc.PermissionsServiceStub(channel)


async def _warm(port: int, metrics: int, meta: Any) -> float:
    """Check until the worker holds the tenant in its relationship index."""
    import grpc

    from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2

    request = permissions_pb2.CheckRequest(
        tenant=dataset.TENANT,
        resource=core_pb2.ObjectReference(object_type="document", object_id=dataset.doc_id(0)),
        permission="view",
        subject=path_clients.user(0),
        consistency=core_pb2.Consistency(minimize_latency=True),
    )
    started = time.monotonic()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        while path_clients.metric(metrics, "authz_index_tenants") < 1:
            if time.monotonic() - started > 900:
                raise RuntimeError("the relationship index did not load within 15 minutes")
            await _stub(channel).Check(request, timeout=60, metadata=meta)
            await asyncio.sleep(1.0)
    return time.monotonic() - started


async def _lookup(
    port: int, pids: list[int], meta: Any, u: int, page: int | None = None
) -> dict[str, Any]:
    import grpc

    from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2

    request = permissions_pb2.LookupResourcesRequest(
        tenant=dataset.TENANT,
        resource_type="document",
        permission="view",
        subject=path_clients.user(u),
        consistency=core_pb2.Consistency(minimize_latency=True),
    )
    allowed: set[int] = set()
    first: float | None = None
    status = "OK"
    pages, slowest = 0, 0.0  # slowest: the longest single call (page), seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        cpu_before = check_bench.cpu_seconds(pids)
        started = time.monotonic()
        try:
            while True:  # with `page`: pages of that many, each resumed from the last cursor
                streamed, last, call_started = 0, None, time.monotonic()
                if page is not None:
                    request.limit = page
                async for reply in _stub(channel).LookupResources(
                    request, timeout=DEADLINE_MS / 1000, metadata=meta
                ):
                    if first is None:
                        first = time.monotonic() - started
                    if reply.decision == core_pb2.DECISION_ALLOWED:
                        allowed.add(int(reply.resource_id[1:]))
                    streamed, last = streamed + 1, reply.cursor
                pages += 1
                slowest = max(slowest, time.monotonic() - call_started)
                if page is None or streamed < page or last is None:
                    break
                request.cursor.CopyFrom(last)
        except grpc.aio.AioRpcError as exc:
            status = exc.code().name
        wall = time.monotonic() - started
        cpu = check_bench.cpu_seconds(pids) - cpu_before
    return {
        "status": status,
        "wall_s": wall,
        "first_s": first,
        "cpu_s": cpu,
        "pages": pages,
        "slowest_page_s": slowest,
        "allowed": allowed,
    }


def main(argv: list[str] | None = None) -> int:
    check_bench.stop_servers_on_sigterm()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", action="append", default=[], help="NAME=DIR, repeatable")
    p.add_argument("--scale", default="1m", choices=sorted(dataset.SCALES))
    p.add_argument("--users", default=DEFAULT_USERS, help="user indexes, comma-separated")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument(
        "--page",
        type=int,
        default=None,
        help="page through each lookup with this limit, resuming from the last cursor",
    )
    args = p.parse_args(argv)
    checkouts = {"this": check_bench.ROOT}
    for spec in args.checkout:
        name, _, path = spec.partition("=")
        checkouts[name] = Path(path).resolve()
    users = [int(u) for u in args.users.split(",")]
    data = dataset.generate(42, args.scale)
    ref = data.reference()
    expected = {u: ref.viewable(u) for u in users}
    print(f"{args.scale}: {len(data.rows):,} relationships; users {users} can view", end=" ")
    print(", ".join(f"{len(expected[u]):,}" for u in users), "documents", flush=True)
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        n: {u: [] for u in users} for n in checkouts
    }
    started_at = dt.datetime.now(dt.UTC)
    with (
        tempfile.TemporaryDirectory(prefix="lookup-bench-") as tmp,
        check_bench.fresh_database(args.postgres, keep=False) as (database, url),
    ):
        work = Path(tmp)
        setup, keys = check_bench.prepare(data, url, database, work, samples=50)
        if "error" in setup:
            print(f"setup failed: {setup['error']}", file=sys.stderr)
            return 1
        meta = check_bench.bearer(keys["check"])
        servers: dict[str, tuple[check_bench.Server, int]] = {}
        try:
            for name, path in checkouts.items():
                servers[name] = _serve(path, url, work / name)
            for name, (server, metrics) in servers.items():
                warm = asyncio.run(_warm(server.port, metrics, meta))
                print(f"{name}: index loaded after {warm:.0f} s", flush=True)
            for rnd in range(args.rounds):
                order = list(servers.items())
                if rnd % 2:
                    order.reverse()
                for name, (server, _) in order:
                    for u in users:
                        m = asyncio.run(_lookup(server.port, server.pids(), meta, u, args.page))
                        allowed = m.pop("allowed")
                        m["results"] = len(allowed)
                        m["wrong"] = int(allowed != expected[u])
                        runs[name][u].append(m)
                        print(
                            f"round {rnd + 1} {name:<6} user {u:<5} {m['status']} "
                            f"{m['results']:>7,} results {m['wall_s']:7.2f} s wall "
                            f"{m['cpu_s']:7.2f} s server CPU {m['pages']} pages "
                            f"(slowest {m['slowest_page_s']:.2f} s) "
                            f"wrong={m['wrong']}",
                            flush=True,
                        )
        finally:
            for server, _ in servers.values():
                server.stop()
    _report(runs)
    stamp = started_at.strftime("%Y-%m-%d-%H%M%S")
    out = check_bench.RESULTS / f"lookup-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "scale": args.scale,
                "page": args.page,
                "checkouts": {n: str(p) for n, p in checkouts.items()},
                "environment": check_bench.environment(args.postgres),
                "runs": {n: {str(u): r for u, r in by.items()} for n, by in runs.items()},
            },
            indent=1,
        )
    )
    print(f"raw: {out}")
    return 0


def _report(runs: dict[str, dict[int, list[dict[str, Any]]]]) -> None:
    print()
    print("| user | results | checkout | wall s median | min-max | server CPU s median |", end="")
    print(" first result s | errors, wrong |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for name, by_user in runs.items():
        for u, ms in by_user.items():
            if not ms:
                continue
            wall = [m["wall_s"] for m in ms]
            cpu = [m["cpu_s"] for m in ms]
            first = [m["first_s"] for m in ms if m["first_s"] is not None]
            bad = sum(m["status"] != "OK" for m in ms)
            print(
                f"| {u} | {ms[0]['results']:,} | {name} | {statistics.median(wall):.2f} | "
                f"{min(wall):.2f}-{max(wall):.2f} | {statistics.median(cpu):.2f} | "
                f"{statistics.median(first) if first else float('nan'):.2f} | "
                f"{bad}, {sum(m['wrong'] for m in ms)} |"
            )


if __name__ == "__main__":
    sys.exit(main())
