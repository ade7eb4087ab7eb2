"""The decision path over gRPC (docs/performance.md): uncached Check at about 10k and 1M
relationships, cache hits while the tenant takes 20 writes a second, CheckBulk(100),
ListPermissions (3 permissions), LookupSubjects of a 10,000-member group and
LookupResources.

    python benchmarks/path_bench.py            # full: 10k and 1M, 3 rounds (~15-25 min)
    python benchmarks/path_bench.py --quick    # smoke: 10k only, one short round

Per scale: the seeded data set of that size (benchmarks/dataset.py SCALES: users, groups
nested three deep plus `group:all` with every user, a folder tree, documents), a fresh
database, `authz import`, API keys, answers checked against the reference evaluator at
fully_consistent (benchmarks/check_bench.py `prepare`). Then per round a fresh server
(2 workers, decision log off, API keys on, relationship index on by default), warmed
until every worker holds the tenant in its index, and in turn:

- **cache hit**: the 64 hot pairs in a closed loop (the reference point of the uncached
  targets);
- **uncached Check, max**: closed loop (benchmarks/loadgen.py `miss`: every request a
  pair no earlier request asked, so the decision cache cannot answer; subproblems such
  as a group's membership of a user may still come from the subproblem cache, as in
  production);
- **uncached Check, open loop at half that max**: fixed schedule, latency from the
  scheduled send time; reported beside it, the servers' own p99 (their handler
  histogram) and the generator's own delay in sending (p99), so that a tail can be
  placed: in the handler, in the generator, or in between (gRPC, queueing, the cores);
- **cache hits under writes**: the 64 hot pairs in a closed loop while a writer touches
  a new relationship in the same tenant 20 times a second; the hit rate is the share of
  decisions the servers answered from their decision cache (`authz_decisions_total`);
- **CheckBulk(100)**: random pairs (uncached, one process at 4 in flight), and the same
  100 pairs every call (hot: answered from the decision cache, as a page of resources
  checked again and again), closed loop, decisions per second. The hot calls come from
  `--processes` generator processes at 4 in flight each, their request serialized once
  and the answers compared with the reference as a list, so that the generator's own
  CPU, on the same two cores, does not set the figure;
- **ListPermissions** of `document` (view, edit, manage) for random pairs;
- **LookupSubjects** of `group:all#member` streamed whole, timed;
- **LookupResources** (document, view) for a sample of users, streamed whole.

Every status is counted and every answer compared with the reference; medians over
rounds are reported. The generator shares the server's two cores. Results:
benchmarks/results/path-<date>-<time>.json, a table on stdout and (full runs) the
"Decision path" section of benchmarks/README.md; a plot with benchmarks/plot.py when
matplotlib is installed. Tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import dataset  # noqa: E402
import path_clients as clients  # noqa: E402
from check_bench import (  # noqa: E402
    RESULTS,
    bearer,
    clean_env,
    create_key,
    environment,
    free_port,
    fresh_database,
    prepare,
    start_server,
    stop_servers_on_sigterm,
)
from check_report import ServerConfig  # noqa: E402
from loadgen import LoadGenerator  # noqa: E402
from path_report import median_of_present, publish  # noqa: E402

WORKERS = 2
WRITES_PER_S = 20.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10k only, one round of 3 s")
    p.add_argument("--scales", help="comma-separated (default 10k,1m; quick 10k)")
    p.add_argument("--reps", type=int, help="rounds (default 3; quick 1)")
    p.add_argument("--duration", type=float, help="measured seconds per scenario (6; quick 3)")
    p.add_argument("--processes", type=int, default=2, help="Check generator processes")
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None)
    args = p.parse_args(argv)
    args.scales = (args.scales or ("10k" if args.quick else "10k,1m")).split(",")
    args.reps = args.reps or (1 if args.quick else 3)
    args.duration = args.duration or (3.0 if args.quick else 6.0)
    return args


def warm_index(gen: LoadGenerator, target: str, auth: Any, ports: list[int]) -> float:
    """Ask every worker until each holds the tenant in its relationship index."""
    started = time.monotonic()
    while True:
        gen.prime(target, channels=8, metadata=auth)
        if all(clients.metric(p, "authz_index_tenants") >= 1 for p in ports):
            return time.monotonic() - started
        if time.monotonic() - started > 600:
            raise RuntimeError("the relationship index did not load within 10 minutes")
        time.sleep(1.0)


def closed_checks(
    gen: LoadGenerator, target: str, auth: Any, args: argparse.Namespace, base: int, **kw: Any
) -> dict[str, Any]:
    gen.submit(
        target,
        kw.pop("workload", "miss"),
        concurrency=32,
        channels=8,
        warmup_s=1.5,
        duration_s=args.duration,
        miss_base=base,
        verify=True,
        metadata=auth,
        **kw,
    )
    result = gen.collect()
    return {
        "throughput": result.throughput,
        "p50_ms": result.p50_us / 1000,
        "p99_ms": result.p99_us / 1000,
        "send_lag_p99_ms": result.send_lag_p99_us / 1000,
        "errors": result.errors,
        "wrong": result.wrong,
        "decisions": result.decisions,
        "failures": result.failures,
    }


def hits_under_writes(
    gen: LoadGenerator,
    target: str,
    keys: dict[str, str],
    args: argparse.Namespace,
    ports: list[int],
) -> dict[str, Any]:
    auth = bearer(keys["check"])
    gen.prime(target, channels=8, metadata=auth)
    before = clients.decisions_by_cache(ports)

    async def with_writer() -> tuple[dict[str, Any], dict[str, int]]:
        stop = asyncio.Event()
        writes = asyncio.create_task(
            clients.writer(target, bearer(keys["write"]), WRITES_PER_S, stop)
        )
        loop = asyncio.get_running_loop()
        checks = await loop.run_in_executor(
            None, lambda: closed_checks(gen, target, auth, args, 0, workload="hot")
        )
        stop.set()
        return checks, dict(await writes)

    checks, writes = asyncio.run(with_writer())
    after = clients.decisions_by_cache(ports)
    hits, misses = after[0] - before[0], after[1] - before[1]
    checks["hit_rate"] = hits / (hits + misses) if hits + misses else None
    checks["writes"] = writes
    return checks


def run_round(
    gen: LoadGenerator, scale: str, url: str, work: Path, keys: dict[str, str], args: Any
) -> dict[str, Any]:
    port, metrics = free_port(), free_port()
    ports = [metrics + w for w in range(WORKERS)]
    config = ServerConfig(f"path-{scale}", "authz", WORKERS, "off")
    env = {"AUTHZ_METRICS_LISTEN": f"127.0.0.1:{metrics}"}
    server, _ = start_server(config, url, port, work, "", extra_env=env)
    target, auth = f"127.0.0.1:{port}", bearer(keys["check"])
    data = dataset.generate(42, scale)
    inputs = clients.Inputs.of(data)
    ref = inputs.ref
    found: dict[str, Any] = {}
    try:
        found["index_warm_s"] = warm_index(gen, target, auth, ports)
        found["worker_rss_mb"] = max(
            clients.metric(p, "process_resident_memory_bytes") / 2**20 for p in ports
        )
        base = int(time.time() * 1000) % (1 << 30) << 20  # fresh pairs every round
        found["uncached_max"] = closed_checks(gen, target, auth, args, base)
        rate = found["uncached_max"]["throughput"] / 2 / args.processes
        before = [clients.check_latency_buckets(p) for p in ports]
        found["uncached_half"] = closed_checks(
            gen, target, auth, args, base + (1 << 19), rate=max(rate, 1.0)
        )
        after = [clients.check_latency_buckets(p) for p in ports]
        # The servers' own p99 beside the callers': what the tail owes to the handler.
        found["uncached_half"]["handler_p99_ms"] = clients.handler_quantile(before, after, 0.99)
        gen.prime(target, channels=8, metadata=auth)
        found["cache_hit"] = closed_checks(gen, target, auth, args, 0, workload="hot")
        found["hits_under_writes"] = hits_under_writes(gen, target, keys, args, ports)
        # The same 100 pairs every call (a page of resources checked again and again),
        # from as many generator processes as the Checks.
        found["bulk_hot"] = clients.bulk_hot_parallel(
            target,
            inputs,
            auth,
            processes=args.processes,
            concurrency=4,
            duration_s=args.duration,
        ).summary()
        for operation, concurrency in (("bulk", 4), ("list", 16)):
            tally = asyncio.run(
                clients.run_closed(
                    target,
                    operation,
                    inputs,
                    auth,
                    concurrency=concurrency,
                    duration_s=args.duration,
                )
            )
            found[operation] = tally.summary()
        found["lookup_subjects"] = asyncio.run(
            clients.lookup_subjects(target, auth, dataset.EVERYONE, data.shape.users)
        )
        # Two users a round (a lookup at 1M took tens of seconds), both reference-checked.
        users = [(7 + 389 * i) % data.shape.users for i in range(2)]
        expected = {u: ref.viewable(u) for u in users}
        found["lookup_resources"] = asyncio.run(
            clients.lookup_resources(target, auth, users, expected)
        ).summary()
    finally:
        server.stop()
    return found


def run_scale(scale: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data = dataset.generate(42, scale)
    print(f"scale {scale}: {data.counts()['relationships']:,} relationships")
    (work / scale).mkdir(parents=True, exist_ok=True)
    with fresh_database(args.postgres, False) as (database, url):
        setup, keys = prepare(data, url, database, work / scale, 100 if args.quick else 300)
        if "error" in setup:
            return {"scale": scale, "counts": data.counts(), "setup": setup, "rounds": []}
        keys["write"] = create_key(
            url, work / scale, clean_env(), "--tenant", dataset.TENANT, "--scopes", "write"
        )
        gen = LoadGenerator(args.processes, seed=42, loop="uvloop", scale=scale)
        rounds = []
        try:
            for rep in range(args.reps):
                rounds.append(run_round(gen, scale, url, work / scale, keys, args))
                print(f"  round {rep + 1}: {brief(rounds[-1])}")
        finally:
            gen.close()
    return {"scale": scale, "counts": data.counts(), "setup": setup, "rounds": rounds}


def brief(found: dict[str, Any]) -> str:
    m, h = found["uncached_max"], found["uncached_half"]
    w = found["hits_under_writes"]
    return (
        f"uncached {m['throughput']:.0f}/s, half-max p99 {h['p99_ms']:.1f} ms, "
        f"hit rate under writes {w['hit_rate'] or 0:.1%}, "
        f"bulk {found['bulk']['decisions_per_s']:.0f} decisions/s, "
        f"LookupSubjects {found['lookup_subjects']['seconds']:.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    stop_servers_on_sigterm()
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    started_at = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "benchmark": "path",
        "started_at": started_at.isoformat(timespec="seconds"),
        "quick": args.quick,
        "options": {k: v for k, v in vars(args).items() if k != "postgres"},
        "environment": environment(args.postgres),
    }
    work = Path(tempfile.mkdtemp(prefix="authz-path-bench-"))
    began = time.monotonic()
    try:
        report["scales"] = [run_scale(scale, args, work) for scale in args.scales]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["runtime_s"] = time.monotonic() - began
    RESULTS.mkdir(exist_ok=True)
    name = f"path-{started_at:%Y-%m-%d-%H%M%S}{'-quick' if args.quick else ''}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=1, default=str) + "\n")
    write_readme = args.readme if args.readme is not None else not args.quick
    return publish(report, RESULTS / name, median_of_present, update_readme=write_readme)


if __name__ == "__main__":
    sys.exit(main())
