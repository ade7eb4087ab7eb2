"""Server CPU per call, this checkout against others, in the same rounds.

On a shared machine wall-clock throughput moves with the neighbours; the CPU time the
server process spends per call moves much less. This benchmark starts one single-worker
`authz serve` per checkout (`--checkout NAME=DIR`, this checkout is always `this`),
interleaved per round and workload, drives a fixed number of calls at a fixed
concurrency from this process, and reports per checkout and workload the median and
spread over rounds of:

- server CPU µs per call (utime + stime of the server process and its threads, read
  from /proc over exactly the measured calls);
- calls per second and p50/p99 latency (noisy: the client shares the cores);
- with the decision log on, records per write+fsync round and fsyncs per call (from the
  server's own counters on its `/metrics` endpoint, over the same calls).

Workloads (all at minimize_latency, API keys on, after priming so the decision cache
holds every pair):

- `check`: Check cycling through 64 fixed (document, user) pairs (cache hits), log off;
- `check-durable`: the same with the decision log durable (the answer waits for fsync);
- `check-buffered`: the same with the log buffered;
- `bulk`: CheckBulk of the same 100 pairs (cost per call and per decision), log off;
- `bulk-durable`: the same with the decision log durable.

Every answer's status and decision are checked against the dataset's reference
evaluator; any error or wrong answer is counted and printed. A baseline checkout needs
the generated stubs (`authz_service/api/gen`): copy them from this one if its protos
are the same. Usage:

    python benchmarks/cpu_ab.py --checkout base=/tmp/base --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import check_bench  # noqa: E402 - the benchmark's own helpers, by path
import dataset  # noqa: E402

ECHO = Path("/echo-ceiling")  # not a checkout: the echo server

WORKLOADS = {
    # name: (decision log mode, method, items per call)
    "check": ("off", "Check", 1),
    "check-durable": ("durable", "Check", 1),
    "check-buffered": ("buffered", "Check", 1),
    "bulk": ("off", "CheckBulk", 100),
    "bulk-durable": ("durable", "CheckBulk", 100),
}


def _requests(data: dataset.Dataset) -> dict[str, tuple[bytes, list[bool]]]:
    from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2

    ref = data.reference()
    latest = core_pb2.Consistency(minimize_latency=True)

    def obj(kind: str, ident: str) -> Any:
        return core_pb2.ObjectReference(object_type=kind, object_id=ident)

    def subject(u: int) -> Any:
        return core_pb2.SubjectReference(object=obj("user", dataset.user_id(u)))

    out: dict[str, tuple[bytes, list[bool]]] = {}
    for i, (d, u, _) in enumerate(dataset.hot_pairs(data)):
        out[f"check{i}"] = (
            permissions_pb2.CheckRequest(
                tenant=dataset.TENANT,
                resource=obj("document", dataset.doc_id(d)),
                permission="view",
                subject=subject(u),
                consistency=latest,
            ).SerializeToString(),
            [ref.allowed(d, u)],
        )
    pairs = [(d, u) for d, u, _ in dataset.hot_pairs(data, count=100)]
    out["bulk"] = (
        permissions_pb2.CheckBulkRequest(
            tenant=dataset.TENANT,
            consistency=latest,
            items=[
                permissions_pb2.CheckBulkRequestItem(
                    resource=obj("document", dataset.doc_id(d)),
                    permission="view",
                    subject=subject(u),
                )
                for d, u in pairs
            ],
        ).SerializeToString(),
        [ref.allowed(d, u) for d, u in pairs],
    )
    return out


def _answers(method: str, raw: bytes) -> list[bool | None]:
    """Per item: allowed or not, or None for an item answered with an error."""
    from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2

    allowed = core_pb2.DECISION_ALLOWED
    if method == "Check":
        return [permissions_pb2.CheckResponse.FromString(raw).decision == allowed]
    reply = permissions_pb2.CheckBulkResponse.FromString(raw)
    return [
        item.result.decision == allowed if item.WhichOneof("outcome") == "result" else None
        for item in reply.items
    ]


async def _drive(
    target: str,
    method: str,
    payloads: list[tuple[bytes, list[bool]]],
    calls: int,
    concurrency: int,
    key: str,
    on_start: Any,
) -> dict[str, Any]:
    """`calls` calls with `concurrency` in flight after a warm-up of a fifth of them;
    `on_start()` is called when the measured calls begin and returns a callable run
    when they end."""
    import grpc

    identity = lambda b: b  # noqa: E731 - bytes in, bytes out
    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    stubs = [
        ch.unary_unary(
            f"/authz.v1.PermissionsService/{method}",
            request_serializer=identity,
            response_deserializer=identity,
        )
        for ch in channels
    ]
    meta = (("authorization", f"Bearer {key}"),)
    statuses: Counter[str] = Counter()
    wrong = 0
    latencies: list[float] = []

    async def run(total: int, record: bool) -> None:
        nonlocal wrong
        counter = iter(range(total))

        async def caller(c: int) -> None:
            nonlocal wrong
            stub = stubs[c % len(stubs)]
            for i in counter:
                payload, expected = payloads[i % len(payloads)]
                started = time.perf_counter()
                try:
                    raw = await stub(payload, metadata=meta, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    statuses[exc.code().name] += 1
                    continue
                if record:
                    latencies.append(time.perf_counter() - started)
                statuses["OK"] += 1
                if expected == [None]:
                    continue  # the echo's fixed answer
                got = _answers(method, raw)
                statuses["item errors"] += got.count(None)
                wrong += sum(g is not None and g != e for g, e in zip(got, expected, strict=True))

        await asyncio.gather(*(caller(c) for c in range(concurrency)))

    try:
        await run(max(len(payloads) * len(stubs), calls // 5), record=False)  # prime + warm up
        statuses.clear()
        stop = on_start()
        started = time.perf_counter()
        await run(calls, record=True)
        elapsed = time.perf_counter() - started
        cpu_s = stop()
    finally:
        for ch in channels:
            await ch.close()
    latencies.sort()
    return {
        "calls_per_s": calls / elapsed,
        "cpu_us_per_call": cpu_s / calls * 1e6,
        "p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else None,
        "statuses": dict(statuses),
        "wrong": wrong,
    }


def _echo(work: Path, response_hex: str) -> check_bench.Server:
    """The echo ceiling (benchmarks/echo_server.py): gRPC and protobuf, no decision."""
    port = check_bench.free_port()
    cmd = [sys.executable, str(BENCH_DIR / "echo_server.py"), "--listen", f"127.0.0.1:{port}"]
    cmd += ["--workers", "1", "--response", response_hex]
    server = check_bench.Server(cmd, check_bench.clean_env(), 1, port, work)
    server.start()
    return server


def _serve(
    checkout: Path, url: str, log_mode: str, work: Path, metrics_port: int | None = None
) -> check_bench.Server:
    port = check_bench.free_port()
    cmd = [sys.executable, "-m", "authz_service", "serve", "--database-url", url]
    cmd += ["--listen", f"127.0.0.1:{port}", "--workers", "1"]
    cmd += ["--decision-log", log_mode, "--log-dir", str(work / "decisions")]
    env = check_bench.clean_env()
    env["PYTHONPATH"] = str(checkout)
    if metrics_port is not None:
        env["AUTHZ_METRICS_LISTEN"] = f"127.0.0.1:{metrics_port}"
    # `python -m` puts the working directory first on sys.path: run in the checkout.
    server = check_bench.Server(cmd, env, 1, port, work, cwd=checkout)
    server.start()
    return server


def measure(
    checkout: Path, url: str, workload: str, args: argparse.Namespace, key: str, work: Path
) -> dict[str, Any]:
    log_mode, method, _ = WORKLOADS[workload]
    payloads = [v for k, v in args.requests.items() if (k == "bulk") == (method == "CheckBulk")]
    metrics_port = None  # the log's counters, read only when there is a log
    if checkout == ECHO:
        server = _echo(work, args.response_hex)
        # One fixed answer: half of them "wrong" by design; not checked.
        payloads = [(payload, [None]) for payload, _ in payloads]  # type: ignore[list-item]
    else:
        metrics_port = check_bench.free_port() if log_mode != "off" else None
        server = _serve(checkout, url, log_mode, work, metrics_port)
    log_counts: dict[str, float] = {}
    try:
        pids = server.pids()

        def on_start() -> Any:
            # Scraped outside the CPU window: the scrape is the server's work, not a call's.
            log_before = _log_counters(metrics_port)
            before = check_bench.cpu_seconds(pids)

            def stop() -> float:
                cpu = check_bench.cpu_seconds(pids) - before
                after = _log_counters(metrics_port)
                log_counts.update({k: after[k] - log_before[k] for k in after})
                return cpu

            return stop

        calls = args.calls if method == "Check" else max(200, args.calls // 20)
        result = asyncio.run(
            _drive(
                f"127.0.0.1:{server.port}", method, payloads, calls, args.concurrency, key, on_start
            )
        )
    finally:
        server.stop()
    if log_counts.get("batches"):
        result["records_per_batch"] = log_counts["records_written"] / log_counts["batches"]
        result["fsyncs_per_call"] = log_counts["fsyncs"] / calls
    return result


_LOG_COUNTERS = ("records_written", "batches", "fsyncs")


def _log_counters(port: int | None) -> dict[str, float]:
    """The decision log writer's counters from the server's `/metrics` (none if off)."""
    if port is None:
        return {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = {}
    for line in text.splitlines():
        for name in _LOG_COUNTERS:
            if line.startswith(f"authz_decision_log_{name}_total "):
                found[name] = float(line.split()[1])
    return found


def main(argv: list[str] | None = None) -> int:
    check_bench.stop_servers_on_sigterm()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkout", action="append", default=[], help="NAME=DIR, repeatable")
    p.add_argument("--workloads", default="check,bulk,check-durable", help=",".join(WORKLOADS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=20_000, help="Check calls per measurement")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--out", type=Path, help="write the raw results here (JSON)")
    p.add_argument(
        "--echo", action="store_true", help="also the echo ceiling (Check workloads only)"
    )
    args = p.parse_args(argv)
    checkouts = {"this": check_bench.ROOT}
    for spec in args.checkout:
        name, _, path = spec.partition("=")
        checkouts[name] = Path(path).resolve()
    workloads = args.workloads.split(",")
    if args.echo:
        checkouts["echo"] = ECHO
        args.response_hex = _echo_response()
    data = dataset.generate(42, "10k")
    args.requests = _requests(data)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {n: [] for n in checkouts} for w in workloads
    }
    with (
        tempfile.TemporaryDirectory(prefix="cpu-ab-") as tmp,
        check_bench.fresh_database(args.postgres, keep=False) as (_name, url),
    ):
        work = Path(tmp)
        env = check_bench.clean_env()
        ndjson = work / "rel.ndjson"
        data.write_ndjson(ndjson)
        check_bench.run_cli(["migrate", "--database-url", url], env)
        check_bench.run_cli(
            [
                "import",
                str(ndjson),
                "--tenant",
                dataset.TENANT,
                "--create-tenant",
                "--no-progress",
                "--database-url",
                url,
            ],
            env,
        )
        admin = check_bench.create_key(url, work, env, "--all-tenants", "--scopes", "admin")
        key = check_bench.create_key(
            url, work, env, "--tenant", dataset.TENANT, "--scopes", "check"
        )
        _write_schema(url, work, admin)
        for rnd in range(args.rounds):
            order = list(checkouts.items())
            if rnd % 2:
                order.reverse()
            for workload in workloads:
                for name, path in order:
                    if path == ECHO and WORKLOADS[workload][1] != "Check":
                        continue
                    m = measure(path, url, workload, args, key, work / f"{name}-{workload}-{rnd}")
                    results[workload][name].append(m)
                    batches = ""
                    if "records_per_batch" in m:
                        batches = (
                            f" {m['records_per_batch']:.1f} records/batch"
                            f" {m['fsyncs_per_call']:.2f} fsyncs/call"
                        )
                    print(
                        f"round {rnd + 1} {workload:<15} {name:<8} "
                        f"{m['cpu_us_per_call']:8.0f} µs/call {m['calls_per_s']:8.0f} calls/s "
                        f"p99 {m['p99_ms']:.1f} ms {m['statuses']} wrong={m['wrong']}{batches}",
                        flush=True,
                    )
    _report({w: {n: r for n, r in by.items() if r} for w, by in results.items()}, workloads)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


def _echo_response() -> str:
    """A CheckResponse shaped like the service's answer (token, id, subject echoed)."""
    from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2
    from authz_service.decisionlog import new_decision_id

    return (
        permissions_pb2.CheckResponse(
            decision=core_pb2.DECISION_ALLOWED,
            checked_at=core_pb2.ConsistencyToken(token="a" * 40),
            decision_id=new_decision_id(),
            subject=core_pb2.SubjectReference(
                object=core_pb2.ObjectReference(object_type="user", object_id=dataset.user_id(1))
            ),
        )
        .SerializeToString()
        .hex()
    )


def _write_schema(url: str, work: Path, admin: str) -> None:
    import grpc

    from authz_service.api.gen.authz.v1 import schema_pb2, schema_pb2_grpc

    server = _serve(check_bench.ROOT, url, "off", work / "schema")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            schema_pb2_grpc.SchemaServiceStub(channel).WriteSchema(
                schema_pb2.WriteSchemaRequest(schema=dataset.SCHEMA),
                timeout=30,
                metadata=(("authorization", f"Bearer {admin}"),),
            )
    finally:
        server.stop()


def _report(results: dict[str, dict[str, list[dict[str, Any]]]], workloads: list[str]) -> None:
    print()
    print(
        "| workload | checkout | CPU µs/call median | min-max | calls/s median | p99 ms median |"
        " records/batch | fsyncs/call | errors, wrong |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for workload in workloads:
        for name, runs in results[workload].items():
            cpu = [r["cpu_us_per_call"] for r in runs]
            rate = [r["calls_per_s"] for r in runs]
            p99 = [r["p99_ms"] for r in runs if r["p99_ms"] is not None]
            bad = sum(v for r in runs for k, v in r["statuses"].items() if k != "OK")
            wrong = sum(r["wrong"] for r in runs)
            per_batch = [r["records_per_batch"] for r in runs if "records_per_batch" in r]
            fsyncs = [r["fsyncs_per_call"] for r in runs if "fsyncs_per_call" in r]
            batch_cells = (
                f"{statistics.median(per_batch):.1f} | {statistics.median(fsyncs):.2f}"
                if per_batch
                else "- | -"
            )
            print(
                f"| {workload} | {name} | {statistics.median(cpu):,.0f} | "
                f"{min(cpu):,.0f}-{max(cpu):,.0f} | {statistics.median(rate):,.0f} | "
                f"{statistics.median(p99):.1f} | {batch_cells} | {bad}, {wrong} |"
            )


if __name__ == "__main__":
    sys.exit(main())
