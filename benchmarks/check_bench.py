"""Check over gRPC: throughput and latency against a bare grpc.aio echo ceiling.

    python benchmarks/check_bench.py            # full run, about 7-8 minutes
    python benchmarks/check_bench.py --quick    # one short round, under 2 minutes
    python benchmarks/check_bench.py --profile  # + cProfile of one worker under cache hits
    python benchmarks/check_bench.py --h2load   # + h2load cross-check (nghttp2-client)

What one run does:

1. generates the seeded data set (benchmarks/dataset.py, seed 42: 1,000 users, 100
   groups nested three deep, 1,000 folders, 100,000 documents, about 216k
   relationships), creates a fresh database `authz_bench_<random>` on the local
   PostgreSQL (dropped at the end), migrates it, loads the rows with `authz import`,
   creates API keys with `authz keys create` (every call carries one, as `authz serve`
   requires by default), writes the schema over gRPC, and checks the server's answers on the benchmark's pairs against the reference
   evaluator (`fully_consistent`, so the engine, not the cache, answers);
2. runs every scenario (a server configuration and a workload) once per round, for
   `--reps` rounds, restarting each server every round and reversing the order of the
   scenarios every other round, so that drift on this shared machine (other processes,
   CPU frequency) spreads over all of them rather than biasing whichever ran last;
   the echo ceiling (benchmarks/echo_server.py) is one of the scenarios of each round;
3. reports per scenario the MEDIAN over rounds of throughput, p50 and p99 latency, and
   the server's CPU time per call (all its processes, read from /proc over exactly the
   measured window), which is less sensitive to the noise than throughput is;
4. writes benchmarks/results/check-<date>-<time>.json (everything, per round), prints a
   markdown table, and (full runs) rewrites the "Check over gRPC" section of
   benchmarks/README.md between its markers.

The load generator (benchmarks/loadgen.py) runs in separate processes on the SAME two
cores as the server, and is the same for the ceiling and the service, so the ratio is
fair while absolute numbers are lower than a dedicated client machine would see. Every
response's status is counted (OK and each error code, RESOURCE_EXHAUSTED included) and
every OK decision is compared with the reference; a scenario with any error or wrong
answer is flagged in the table. Tests never assert on these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import inspect
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT))

import dataset  # noqa: E402
from check_report import (  # noqa: E402
    README,
    Scenario,
    ServerConfig,
    build_matrix,
    markdown_table,
    ratio_lines,
    ratios,
    readme_section,
    summarize,
    write_readme,
)
from loadgen import LoadGenerator, RunResult  # noqa: E402

RESULTS = BENCH_DIR / "results"
CHECK_PATH = "/authz.v1.PermissionsService/Check"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------
# Processes and /proc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(x) for x in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def worker_pids(pids: list[int]) -> list[int]:
    """The spawned server workers among a process tree (not the supervisor, not
    multiprocessing's resource tracker)."""
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the given processes (all their threads)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def connections_per_process(port: int) -> dict[str, int]:
    """Established server-side connections on `port`, per owning pid (via `ss`)."""
    if shutil.which("ss") is None:
        return {}
    try:
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return counts


Metadata = tuple[tuple[str, str], ...]


def bearer(key: str | None) -> Metadata:
    """gRPC metadata presenting an API key (none without a key)."""
    return (("authorization", f"Bearer {key}"),) if key else ()


def source_digest() -> str:
    """A digest of the service's source: other people edit this tree while a run lasts,
    and a run whose code changed half-way is reported as such."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "authz_service").rglob("*.py")):
        if "/gen/" not in str(path):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def stop_servers_on_sigterm() -> None:
    """A SIGTERM (`kill`, `pkill`) ends the run through its `finally` blocks, which stop
    the servers and drop the database; by default Python dies at once and leaves them
    running in their own process groups."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus every AUTHZ_ variable, so the shell cannot change a run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHZ_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class Server:
    """One `authz serve` or echo server (with its workers), in its own process group."""

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        workers: int,
        port: int,
        logs: Path,
        cwd: Path = ROOT,
    ):
        self.cmd, self.env, self.workers, self.port, self.cwd = cmd, env, workers, port, cwd
        logs.mkdir(parents=True, exist_ok=True)
        self._out_path = logs / "stdout.txt"
        self._err_path = logs / "stderr.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90.0) -> None:
        with self._out_path.open("wb") as out, self._err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.cmd, stdout=out, stderr=err, env=self.env, cwd=self.cwd, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            listening = self._out_path.read_text(errors="replace").count("listening on")
            if listening >= self.workers:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        tail = self.stderr_tail()
        self.stop()
        raise RuntimeError(f"server did not start: {' '.join(self.cmd[:6])} ...\n{tail}")

    def stderr_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._err_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []

    def stop(self, timeout_s: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            # Our own process group (start_new_session): the server and its workers only.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# ---------------------------------------------------------------------------------------
# Database


def _admin_url(base: str) -> str:
    return f"{base.rstrip('/')}/postgres"


async def _admin(base: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_admin_url(base))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _query(url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_database(base: str, keep: bool) -> Iterator[tuple[str, str]]:
    name = f"authz_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield name, f"{base.rstrip('/')}/{name}"
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def backend_pids(url: str, database: str) -> list[int]:
    rows = asyncio.run(
        _query(
            url,
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    )
    return [int(r["pid"]) for r in rows]


# ---------------------------------------------------------------------------------------
# Setup: data, schema, verification, the response the echo sends


def run_cli(args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "authz_service", *args], check=True, env=env, cwd=ROOT)
    return time.monotonic() - started


def setup_server_checks(
    target: str, data: dataset.Dataset, samples: int, keys: dict[str, str]
) -> dict[str, Any]:
    """Write the schema; compare answers with the reference; capture a real response."""
    import grpc

    from authz_service.api.gen.authz.v1 import (
        core_pb2,
        permissions_pb2,
        permissions_pb2_grpc,
        schema_pb2,
        schema_pb2_grpc,
    )

    def request(d: int, u: int, consistency: Any) -> Any:
        return permissions_pb2.CheckRequest(
            tenant=dataset.TENANT,
            resource=core_pb2.ObjectReference(object_type="document", object_id=dataset.doc_id(d)),
            permission="view",
            subject=core_pb2.SubjectReference(
                object=core_pb2.ObjectReference(object_type="user", object_id=dataset.user_id(u))
            ),
            consistency=consistency,
        )

    ref = data.reference()
    with grpc.insecure_channel(target) as channel:
        schema = schema_pb2_grpc.SchemaServiceStub(channel).WriteSchema(
            schema_pb2.WriteSchemaRequest(schema=dataset.SCHEMA),
            timeout=30,
            metadata=bearer(keys.get("admin")),
        )
        stub = permissions_pb2_grpc.PermissionsServiceStub(channel)
        strong = core_pb2.Consistency(fully_consistent=True)
        pairs = [(d, u) for d, u, _ in dataset.hot_pairs(data)]
        # Far from the ranges the load uses; a different server instance anyway.
        pairs += [dataset.miss_pair((1 << 40) + k, data.shape) for k in range(samples)]
        wrong, allowed, timings = [], 0, []
        for d, u in pairs:
            started = time.perf_counter()
            answer = stub.Check(
                request(d, u, strong), timeout=30, metadata=bearer(keys.get("check"))
            )
            timings.append(time.perf_counter() - started)
            expected = ref.allowed(d, u)
            allowed += expected
            if (answer.decision == core_pb2.DECISION_ALLOWED) != expected:
                wrong.append(f"document:{dataset.doc_id(d)} user:{dataset.user_id(u)}")
        d, u, _ = dataset.hot_pairs(data)[0]
        minimal = core_pb2.Consistency(minimize_latency=True)
        sample_request = request(d, u, minimal)
        sample_response = stub.Check(sample_request, timeout=30, metadata=bearer(keys.get("check")))
    timings.sort()
    return {
        "schema_version": schema.schema_version,
        "checked_pairs": len(pairs),
        "allowed_expected": allowed,
        "wrong": wrong[:20],
        "wrong_count": len(wrong),
        "sequential_strong_check_ms": {
            "p50": timings[len(timings) // 2] * 1000,
            "max": timings[-1] * 1000,
        },
        "request_bytes": len(sample_request.SerializeToString()),
        "response_bytes": len(sample_response.SerializeToString()),
        "response_hex": sample_response.SerializeToString().hex(),
        "request_hex": sample_request.SerializeToString().hex(),
    }


# ---------------------------------------------------------------------------------------
# Running scenarios


@dataclass
class Options:
    reps: int
    duration_s: float
    warmup_s: float
    processes: int
    concurrency: int
    channels: int
    trace_ratio: float
    client_loop: str
    only: str | None = None


def selected_matrix(opts: Options) -> list[tuple[ServerConfig, list[str]]]:
    """The scenario matrix, cut down to the scenarios `--only` names (a regex)."""
    matrix = build_matrix(opts.trace_ratio)
    if opts.only is None:
        return matrix
    chosen = [
        (config, [w for w in workloads if re.search(opts.only, Scenario(config, w).name)])
        for config, workloads in matrix
    ]
    return [(config, workloads) for config, workloads in chosen if workloads]


@dataclass
class Measurement:
    scenario: str
    config: str
    workload: str
    rep: int
    result: dict[str, Any] | None = None
    server_cpu_us_per_call: float | None = None
    db_cpu_us_per_call: float | None = None
    machine_busy_pct: float | None = None
    loadavg_before: list[float] = field(default_factory=list)
    connections_per_worker: list[int] = field(default_factory=list)
    prime_statuses: dict[str, int] = field(default_factory=dict)
    error: str = ""


def start_server(
    config: ServerConfig,
    url: str,
    port: int,
    work: Path,
    response_hex: str,
    extra_env: dict[str, str] | None = None,
) -> tuple[Server, Path | None]:
    logs = work / "servers" / f"{config.name.replace(' ', '_').replace('=', '-')}-{port}"
    if config.kind == "echo":
        cmd = [
            sys.executable,
            str(BENCH_DIR / "echo_server.py"),
            "--listen",
            f"127.0.0.1:{port}",
            "--workers",
            str(config.workers),
            "--response",
            response_hex,
        ]
        server = Server(cmd, clean_env(), config.workers, port, logs)
        server.start()
        return server, None
    log_dir = logs / "decisions"
    cmd = [
        sys.executable,
        "-m",
        "authz_service",
        "serve",
        "--database-url",
        url,
        "--listen",
        f"127.0.0.1:{port}",
        "--workers",
        str(config.workers),
        "--decision-log",
        config.log_mode,
        "--log-dir",
        str(log_dir),
    ]
    if not config.auth:
        cmd.append("--no-auth")
    env = clean_env(AUTHZ_TRACE_SAMPLE_RATIO=repr(config.trace_ratio), **(extra_env or {}))
    server = Server(cmd, env, config.workers, port, logs)
    server.start()
    return server, log_dir


def start_with_retry(
    config: ServerConfig, url: str, work: Path, response_hex: str
) -> tuple[Server, Path | None]:
    """`start_server` on a free port; again on another if someone took it meanwhile (the
    machine runs other test suites that bind ports too)."""
    for attempt in range(3):
        try:
            return start_server(config, url, free_port(), work, response_hex)
        except RuntimeError as exc:
            if "bind" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def decision_log_records(log_dir: Path | None) -> tuple[int, int]:
    """(records, bytes) in the decision log's segment files."""
    if log_dir is None or not log_dir.exists():
        return 0, 0
    records = size = 0
    for path in log_dir.rglob("*.jsonl"):
        if re.fullmatch(r"[0-9]{6,}\.jsonl", path.name):
            data = path.read_bytes()
            records += data.count(b"\n")
            size += len(data)
    return records, size


def measure(
    gen: LoadGenerator,
    scenario: Scenario,
    server: Server,
    opts: Options,
    rep: int,
    miss_base: int,
    db: tuple[str, str],
    auth: Metadata,
) -> Measurement:
    m = Measurement(scenario.name, scenario.config.name, scenario.workload, rep)
    is_authz = scenario.config.kind == "authz"
    target = f"127.0.0.1:{server.port}"
    if scenario.workload == "hot":
        m.prime_statuses = gen.prime(target, channels=opts.channels, metadata=auth)
    m.loadavg_before = loadavg()
    t_start, t_end = gen.submit(
        target,
        scenario.workload,
        concurrency=opts.concurrency,
        channels=opts.channels,
        warmup_s=opts.warmup_s,
        duration_s=opts.duration_s,
        miss_base=miss_base,
        verify=is_authz,
        metadata=auth,  # the echo gets the same header: same bytes on the wire
    )
    # Database backends and worker processes are listed during the warm-up, when every
    # connection is open; the CPU counters are read at the window's two ends.
    time.sleep(max(0.0, t_start - 0.3 - time.monotonic()))
    pids = server.pids()
    workers = worker_pids(pids) if server.workers > 1 else pids
    conns = connections_per_process(server.port)
    m.connections_per_worker = sorted((conns.get(str(p), 0) for p in workers), reverse=True)
    db_pids: list[int] = []
    if is_authz:
        with contextlib.suppress(Exception):
            db_pids = backend_pids(*db)
    time.sleep(max(0.0, t_start - time.monotonic()))
    s0, d0, (busy0, total0) = cpu_seconds(pids), cpu_seconds(db_pids), machine_cpu()
    time.sleep(max(0.0, t_end - time.monotonic()))
    s1, d1, (busy1, total1) = cpu_seconds(pids), cpu_seconds(db_pids), machine_cpu()
    result = gen.collect()
    m.result = asdict(result)
    for code, count in m.prime_statuses.items():  # priming errors flag the scenario too
        if code != "OK":
            m.result["errors"][f"{code} (priming)"] = count
    calls = sum(result_calls(result))
    if calls:
        m.server_cpu_us_per_call = (s1 - s0) / calls * 1e6
        m.db_cpu_us_per_call = (d1 - d0) / calls * 1e6 if db_pids else None
    if total1 > total0:
        m.machine_busy_pct = 100 * (busy1 - busy0) / (total1 - total0)
    return m


def result_calls(result: RunResult) -> list[int]:
    return [result.ok, *result.errors_in_window.values()]


def run_rounds(
    gen: LoadGenerator,
    opts: Options,
    url: str,
    database: str,
    work: Path,
    response_hex: str,
    auth: Metadata,
    progress: bool = True,
) -> tuple[list[Measurement], dict[str, Any]]:
    matrix = selected_matrix(opts)
    measurements: list[Measurement] = []
    logs_check: dict[str, Any] = {}
    for rep in range(opts.reps):
        order = matrix if rep % 2 == 0 else list(reversed(matrix))
        for config, workloads in order:
            try:
                server, log_dir = start_with_retry(config, url, work, response_hex)
            except Exception as exc:
                for workload in workloads:
                    m = Measurement(Scenario(config, workload).name, config.name, workload, rep)
                    m.error = str(exc)
                    measurements.append(m)
                print(f"  ! {config.name}: {str(exc).splitlines()[0]}", file=sys.stderr)
                continue
            ok_total = 0
            try:
                for workload in workloads if rep % 2 == 0 else list(reversed(workloads)):
                    scenario = Scenario(config, workload)
                    try:
                        m = measure(
                            gen, scenario, server, opts, rep, rep << 26, (url, database), auth
                        )
                    except Exception as exc:
                        m = Measurement(scenario.name, config.name, workload, rep, error=repr(exc))
                    measurements.append(m)
                    if m.result:
                        r = m.result
                        ok_total += r["ok_all_phases"]
                    if progress:
                        _print_progress(rep, m)
            finally:
                server.stop()
            if config.log_mode != "off" and config.kind == "authz":
                records, size = decision_log_records(log_dir)
                logs_check[f"{config.name} rep {rep}"] = {
                    "records": records,
                    "bytes": size,
                    "ok_responses_received": ok_total,
                }
                if log_dir is not None:
                    shutil.rmtree(log_dir, ignore_errors=True)
    return measurements, logs_check


def _print_progress(rep: int, m: Measurement) -> None:
    if m.result is None:
        print(f"  round {rep + 1}  {m.scenario:<40} FAILED: {m.error[:200]}", file=sys.stderr)
        return
    r = m.result
    flag = ""
    if r["errors"] or r["wrong"] or r["failures"]:
        flag = f"  ERRORS {r['errors']} wrong={r['wrong']} {r['failures']}"
    cpu = m.server_cpu_us_per_call
    print(
        f"  round {rep + 1}  {m.scenario:<40} {r['throughput']:8.0f} req/s"
        f"  p50 {r['p50_us'] / 1000:6.1f} ms  p99 {r['p99_us'] / 1000:6.1f} ms"
        f"  server {cpu if cpu is not None else float('nan'):6.0f} µs/call"
        f"  conns {m.connections_per_worker}{flag}",
        file=sys.stderr,
        flush=True,
    )


# ---------------------------------------------------------------------------------------
# Profile


def profile_hot(gen: LoadGenerator, opts: Options, url: str, auth: Metadata) -> dict[str, Any]:
    """cProfile one worker in steady state under the cache-hit load; the top costs.

    The worker runs in this process (`App.start`, what `authz serve` runs per worker, log
    off) so the profiler can be switched on for exactly the measured window: start-up and
    the cold-cache warm-up stay out of the figures."""
    return asyncio.run(_profile_hot(gen, opts, url, auth))


async def _profile_hot(
    gen: LoadGenerator, opts: Options, url: str, auth: Metadata
) -> dict[str, Any]:
    import cProfile
    import pstats

    from authz_service.app import App
    from authz_service.config import load_settings

    overrides = {
        "database_url": url,
        "listen": "127.0.0.1:0",
        "log_mode": "off",
        "migrate_on_start": False,
    }
    app = await App.start(load_settings(overrides, environ={}))
    profiler = cProfile.Profile()
    try:
        await asyncio.to_thread(
            gen.prime, f"127.0.0.1:{app.port}", channels=opts.channels, metadata=auth
        )
        t_start, t_end = await asyncio.to_thread(
            gen.submit,
            f"127.0.0.1:{app.port}",
            "hot",
            concurrency=opts.concurrency,
            channels=opts.channels,
            warmup_s=max(opts.warmup_s, 2.0),
            duration_s=opts.duration_s,
            miss_base=0,
            verify=True,
            metadata=auth,
        )
        await asyncio.sleep(max(0.0, t_start - time.monotonic()))
        profiler.enable()
        await asyncio.sleep(max(0.0, t_end - time.monotonic()))
        profiler.disable()
        result = await asyncio.to_thread(gen.collect)
    finally:
        await app.stop(1.0)
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = [
        {"function": f"{_short(f)}:{line}({func})", "calls": nc, "tottime_s": tt, "cumtime_s": ct}
        for (f, line, func), (_cc, nc, tt, ct, _callers) in raw.items()
    ]
    # Per call of the servicer's Check inside the window, not per call the client saw.
    checks = (
        max(
            (
                r["calls"]
                for r in rows
                if "api/permissions.py" in r["function"] and r["function"].endswith("(Check)")
            ),
            default=result.ok,
        )
        or 1
    )
    for row in rows:
        row["tottime_us_per_call"] = row["tottime_s"] / checks * 1e6
        row["cumtime_us_per_call"] = row["cumtime_s"] / checks * 1e6
    return {
        "throughput_under_profiler": result.throughput,
        "checks_profiled": checks,
        "errors": result.errors,
        "wrong": result.wrong,
        "profiled_seconds_total": stats.total_tt,  # type: ignore[attr-defined]
        "top_tottime": sorted(rows, key=lambda r: r["tottime_s"], reverse=True)[:30],
        "top_cumtime": sorted(rows, key=lambda r: r["cumtime_s"], reverse=True)[:50],
    }


def h2load_cross_check(
    opts: Options, url: str, work: Path, response_hex: str, request: bytes, auth: Metadata
) -> list[dict[str, Any]]:
    """Optional: h2load (a C client, far cheaper per call than the Python generator)
    against the echo and a cache-hit Check, same connections and calls in flight.

    h2load counts a gRPC error as a success (the HTTP status is 200 either way), so its
    numbers are a cross-check of the Python generator, not a replacement: after each run
    the same request is sent 200 times through a real client and every status checked."""
    import grpc

    from authz_service.api.gen.authz.v1 import permissions_pb2

    body = work / "grpc_body.bin"
    body.write_bytes(b"\x00" + len(request).to_bytes(4, "big") + request)
    connections = opts.processes * opts.channels
    streams = max(1, opts.concurrency * opts.processes // connections)
    configs = [ServerConfig("echo-2w", "echo", 2), ServerConfig("2w log=off", "authz", 2, "off")]
    rows: list[dict[str, Any]] = []
    for rep in range(opts.reps):
        for config in configs:
            port = free_port()
            server, _ = start_server(config, url, port, work, response_hex)
            try:
                command = ["h2load", "-c", str(connections), "-m", str(streams)]
                command += ["-D", f"{opts.duration_s * 1000:.0f}ms"]
                command += ["--warm-up-time", f"{max(opts.warmup_s, 0.1) * 1000:.0f}ms"]
                command += ["-d", str(body), "-H", "content-type: application/grpc"]
                command += ["-H", "te: trailers"]
                for key, value in auth:
                    command += ["-H", f"{key}: {value}"]
                command += [f"http://127.0.0.1:{port}/authz.v1.PermissionsService/Check"]
                out = subprocess.run(
                    command, capture_output=True, text=True, timeout=120, check=False
                ).stdout
                statuses: dict[str, int] = {}
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    call = channel.unary_unary(
                        CHECK_PATH,
                        request_serializer=None,
                        response_deserializer=permissions_pb2.CheckResponse.FromString,
                    )
                    for _ in range(200):
                        try:
                            call(request, timeout=5, metadata=auth)
                            code = "OK"
                        except grpc.RpcError as exc:
                            code = exc.code().name  # type: ignore[attr-defined]
                        statuses[code] = statuses.get(code, 0) + 1
            finally:
                server.stop()
            rate = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
            codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
            rows.append(
                {
                    "config": config.name,
                    "rep": rep,
                    "throughput": float(rate.group(1)) if rate else None,
                    "http_2xx": int(codes.group(1)) if codes else None,
                    "http_other": sum(int(x) for x in codes.groups()[1:]) if codes else None,
                    "status_check_after": statuses,
                    "h2load_output_tail": out.strip().splitlines()[-9:],
                    "connections": connections,
                    "streams_per_connection": streams,
                }
            )
            print(f"  h2load round {rep + 1}  {config.name:<12} {rows[-1]['throughput']} req/s")
    return rows


def _short(filename: str) -> str:
    for marker in ("site-packages/", "authz_service/", "lib/python3"):
        if marker in filename:
            return filename[filename.index(marker) :]
    return filename


def tracing_is_wired() -> bool:
    import authz_service.app as app_module
    import authz_service.cli.serve as serve_module

    source = inspect.getsource(app_module) + inspect.getsource(serve_module)
    return "trace_ratio" in source or "Telemetry" in source


def environment(url_base: str) -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for name in ("grpcio", "protobuf", "asyncpg", "uvloop", "cachetools", "opentelemetry-sdk"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    pg = None
    with contextlib.suppress(Exception):
        pg = asyncio.run(_query(_admin_url(url_base), "SELECT version()"))[0][0]
    commit = dirty = None
    with contextlib.suppress(Exception):
        git = ["git", "-C", str(ROOT)]
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                [*git, "status", "--porcelain"], capture_output=True, text=True, check=False
            ).stdout.strip()
        )
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "loadavg_at_start": loadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "postgres": pg,
        "git_commit": commit,
        "git_dirty": dirty,
        "h2load": shutil.which("h2load") is not None,
        "source_digest_at_start": source_digest(),
    }


# ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Check over gRPC vs a bare grpc.aio echo ceiling.")
    p.add_argument("--quick", action="store_true", help="1 round of 3 s: a smoke run")
    p.add_argument("--reps", type=int, help="rounds (default 3; quick 1)")
    p.add_argument("--duration", type=float, help="measured seconds per scenario (6; quick 3)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per scenario (1.5; quick 1)")
    p.add_argument("--processes", type=int, default=2, help="load generator processes")
    p.add_argument("--concurrency", type=int, default=32, help="calls in flight per process")
    p.add_argument("--channels", type=int, default=8, help="connections per process")
    p.add_argument("--trace-ratio", type=float, default=0.01, help="sampling of the traced run")
    p.add_argument(
        "--client-loop",
        choices=["uvloop", "asyncio"],
        default=None,
        help="generator event loop (default uvloop when installed)",
    )
    p.add_argument(
        "--postgres",
        default=os.environ.get("AUTHZ_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432"),
        help="server to create the throwaway database on",
    )
    p.add_argument("--keep-db", action="store_true", help="do not drop the database")
    p.add_argument(
        "--only",
        help="run only the scenarios whose name matches this regex, e.g. "
        "'echo-2w|hit, 2w log=(off|durable)$' (no README update)",
    )
    p.add_argument("--profile", action="store_true", help="also cProfile one worker on cache hits")
    p.add_argument(
        "--h2load",
        action="store_true",
        help="also cross-check echo and cache hit with h2load (nghttp2-client), if installed",
    )
    p.add_argument(
        "--readme",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rewrite the README section (default: yes for full runs, no for --quick)",
    )
    return p.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    client_loop = args.client_loop
    if client_loop is None:
        try:
            import uvloop  # noqa: F401

            client_loop = "uvloop"
        except ImportError:
            client_loop = "asyncio"
    return Options(
        reps=args.reps or (1 if args.quick else 3),
        duration_s=args.duration or (3.0 if args.quick else 6.0),
        warmup_s=args.warmup if args.warmup is not None else (1.0 if args.quick else 1.5),
        processes=args.processes,
        concurrency=args.concurrency,
        channels=args.channels,
        trace_ratio=args.trace_ratio,
        client_loop=client_loop,
        only=args.only,
    )


# Used as the echo's answer only when no real server could produce one.
FALLBACK_RESPONSE_HEX = (
    "08011a180a164d533478596a4d79597a49345932497a4f474d754d51221a30314d3848385239584d4632"
    "4245583342355650315a4841434b320f0a0d0a047573657212057530303630"
)


def create_key(url: str, work: Path, env: dict[str, str], *scope_args: str) -> str:
    """An API key made with `authz keys create` (printed once on stdout)."""
    command = [sys.executable, "-m", "authz_service", "keys", "create", *scope_args]
    command += ["--name", "check-bench", "--database-url", url]
    command += ["--log-dir", str(work / "admin-log")]
    out = subprocess.run(
        command, check=True, env=env, cwd=ROOT, capture_output=True, text=True
    ).stdout
    return out.strip().splitlines()[-1]


def prepare(
    data: dataset.Dataset, url: str, database: str, work: Path, samples: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """Migrate, import, make API keys, write the schema and verify answers. Failures are
    recorded, not raised: the echo ceiling can still be measured, and the report says
    what was not. Returns the setup record and the keys (kept out of the results)."""
    setup: dict[str, Any] = {"database": database, "counts": data.counts()}
    keys: dict[str, str] = {}
    env = clean_env()
    ndjson = work / "relationships.ndjson"
    data.write_ndjson(ndjson)
    try:
        run_cli(["migrate", "--database-url", url], env)
        command = ["import", str(ndjson), "--tenant", dataset.TENANT, "--create-tenant"]
        command += ["--no-progress"]
        setup["import_s"] = run_cli([*command, "--database-url", url], env)
        print(f"imported {len(data.rows):,} relationships in {setup['import_s']:.1f} s")
        # The load uses what a real caller would: a key bound to the tenant, scope check.
        keys["admin"] = create_key(url, work, env, "--all-tenants", "--scopes", "admin")
        keys["check"] = create_key(url, work, env, "--tenant", dataset.TENANT, "--scopes", "check")
        setup["auth"] = "API key bound to the tenant, scope check"
        port = free_port()
        server, _ = start_server(ServerConfig("setup", "authz", 1, "off"), url, port, work, "")
        try:
            setup["verify"] = setup_server_checks(f"127.0.0.1:{port}", data, samples, keys)
        finally:
            server.stop()
        verify = setup["verify"]
        print(f"verified {verify['checked_pairs']} pairs: {verify['wrong_count']} wrong")
    except Exception as exc:
        setup["error"] = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, subprocess.CalledProcessError) and exc.stderr:
            setup["error"] += " " + str(exc.stderr)[-500:]
        print(f"setup failed, measuring what still works: {setup['error']}", file=sys.stderr)
    return setup, keys


def run_h2load(
    opts: Options, url: str, work: Path, setup: dict[str, Any], response_hex: str, auth: Metadata
) -> dict[str, Any]:
    if shutil.which("h2load") is None:
        return {"error": "h2load not installed (apt-get install nghttp2-client)"}
    if "verify" not in setup:
        return {"error": "setup failed; no request to send"}
    print("h2load cross-check (statuses checked separately afterwards)...")
    try:
        request = bytes.fromhex(setup["verify"]["request_hex"])
        rows = h2load_cross_check(opts, url, work, response_hex, request, auth)
    except Exception as exc:
        return {"error": repr(exc)}
    summary = {}
    for name in sorted({r["config"] for r in rows}):
        rates = [r["throughput"] for r in rows if r["config"] == name and r["throughput"]]
        summary[name] = statistics.median(rates) if rates else None
    return {"runs": rows, "median_throughput": summary}


def main(argv: list[str] | None = None) -> int:
    stop_servers_on_sigterm()
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in logs
    began = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    opts = options(args)
    report: dict[str, Any] = {
        "benchmark": "check",
        "started_at": started_at.isoformat(timespec="seconds"),
        "quick": args.quick,
        "options": asdict(opts),
        "environment": environment(args.postgres),
        "tracing_wired": tracing_is_wired(),
    }
    env_info = report["environment"]
    print(
        f"check benchmark: {env_info['nproc']} cores, load {env_info['loadavg_at_start']}, "
        f"{opts.reps} rounds of {opts.duration_s:g} s per scenario"
    )
    work = Path(tempfile.mkdtemp(prefix="authz-check-bench-"))
    gen: LoadGenerator | None = None
    try:
        data = dataset.generate(42)
        with fresh_database(args.postgres, args.keep_db) as (database, url):
            setup, keys = prepare(data, url, database, work, 100 if args.quick else 300)
            report["setup"] = setup
            auth = bearer(keys.get("check"))
            response_hex = setup.get("verify", {}).get("response_hex", FALLBACK_RESPONSE_HEX)
            gen = LoadGenerator(opts.processes, seed=42, loop=opts.client_loop)
            measurements, report["decision_log_check"] = run_rounds(
                gen, opts, url, database, work, response_hex, auth
            )
            if args.h2load:
                report["h2load"] = run_h2load(opts, url, work, setup, response_hex, auth)
            if args.profile:
                print("profiling one worker under cache hits (cProfile)...")
                try:
                    report["profile"] = profile_hot(gen, opts, url, auth)
                except Exception as exc:
                    report["profile"] = {"error": repr(exc)}
    finally:
        if gen is not None:
            gen.close()
        shutil.rmtree(work, ignore_errors=True)
    report["measurements"] = [asdict(m) for m in measurements]
    report["summary"] = summarize(report["measurements"], build_matrix(opts.trace_ratio))
    report["ratios"] = ratios(report["summary"], opts.trace_ratio)
    env_info["loadavg_at_end"] = loadavg()
    env_info["source_digest_at_end"] = source_digest()
    env_info["source_changed_during_run"] = (
        env_info["source_digest_at_end"] != env_info["source_digest_at_start"]
    )
    report["runtime_s"] = time.monotonic() - began
    return publish(report, args, started_at)


def publish(report: dict[str, Any], args: argparse.Namespace, started_at: dt.datetime) -> int:
    """Write the JSON, print the table, update the README and the plot."""
    RESULTS.mkdir(exist_ok=True)
    stamp = started_at.strftime("%Y-%m-%d-%H%M%S")
    json_name = f"check-{stamp}{'-quick' if args.quick else ''}.json"
    (RESULTS / json_name).write_text(json.dumps(report, indent=1, default=str) + "\n")
    rows = report["summary"]
    table = markdown_table(rows)
    lines = ratio_lines(report["ratios"], args.trace_ratio, report["tracing_wired"])
    print(f"\n{table}\n\n" + "\n".join(lines))
    h2 = (report.get("h2load") or {}).get("median_throughput")
    if h2:
        print(f"\nh2load cross-check, median req/s: {h2}")
    profile = report.get("profile") or {}
    if "top_tottime" in profile:
        print("\nTop own time under cProfile (µs per call, cache hit, 1 worker, log off):")
        for row in profile["top_tottime"][:15]:
            print(f"  {row['tottime_us_per_call']:8.1f}  {row['function']}")
    print(f"\nraw results: {RESULTS / json_name}  (runtime {report['runtime_s']:.0f} s)")
    if args.readme if args.readme is not None else not (args.quick or args.only):
        write_readme(readme_section(report, table, lines, json_name))
        print(f"updated {README}")
    with contextlib.suppress(ImportError):
        import matplotlib  # noqa: F401
        from plot import plot

        print(f"plot: {plot(RESULTS / json_name)}")
    return 1 if any(row["flagged"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
