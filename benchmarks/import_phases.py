"""Where `authz import` spends its time: wall and CPU per phase of one import.

    python benchmarks/import_phases.py --baseline /path/to/other/checkout
    python benchmarks/import_phases.py --rounds 1 --documents 40000      # a quick look
    python benchmarks/import_phases.py --postmaster-pid /path/to/pgdata/postmaster.pid
    python benchmarks/import_phases.py --into replacing --documents 40000   # staged path

The data set and database setup are import_bench.py's (seed 42, a fresh database per
round; with --into beside or replacing, this checkout's `authz import` first loads the
same rows, not timed). Each round runs the importer of each checkout (interleaved,
alternating order) in a child process that times every statement it sends: the COPY
(which includes the client's parsing), each CREATE INDEX, the staged path's statements
and the ANALYZE. Per phase: wall seconds, the server backend's CPU (from /proc:
PostgreSQL must run on this machine; parallel index workers are other processes and not
in it) and, with --postmaster-pid, the CPU of every process of that cluster, workers
included (only meaningful on a cluster nobody else uses). Medians over rounds; writes
benchmarks/results/import-phases-<into>-<stamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import dataset  # noqa: E402
import import_bench  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> tuple[int, float, float]:
    """(parent pid, own CPU seconds, CPU seconds of its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / _TICK
    return int(fields[1]), own, (int(fields[13]) + int(fields[14])) / _TICK


def _cluster_cpu(postmaster: int) -> float:
    """CPU seconds of a cluster: its live processes and those that have exited."""
    total = _process_cpu(postmaster)[2]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent, own, _ = _process_cpu(int(entry.name))
            except (OSError, IndexError):
                continue  # exited meanwhile
            if parent == postmaster:
                total += own
    return total


_STAGED = {
    "ANALYZE import_rows": "staged: ANALYZE of the copy",
    "SELECT min(line)": "staged: duplicate check",
    "UPDATE relationships": "staged: UPDATE of replaced rows",
    "INSERT INTO relationships": "staged: INSERT ... SELECT",
}


def _phase(method: str, args: tuple[Any, ...]) -> str:
    sql = args[0] if args and isinstance(args[0], str) else ""
    if method == "copy_to_table":
        return "COPY (with parsing)"
    for start, phase in _STAGED.items():
        if sql.lstrip().startswith(start):
            return phase
    if sql.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")):
        return "index " + sql.split(" ON ", 1)[0].rsplit(" ", 1)[-1]
    if sql.startswith("ANALYZE"):
        return "ANALYZE"
    return "other statements"


def child(checkout: Path, url: str, path: Path, postmaster: int | None) -> None:
    """Import `path` with `checkout`'s importer and print the phases as JSON."""
    sys.path.insert(0, str(checkout))
    import asyncpg

    from authz_service.store import postgres
    from authz_service.store.postgres.importer import import_file

    phases: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])

    def timed(method: str) -> None:
        original = getattr(asyncpg.connection.Connection, method)

        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            server = self.get_server_pid()
            before = (time.perf_counter(), _process_cpu(server)[1], _cluster(postmaster))
            try:
                return await original(self, *args, **kwargs)
            finally:
                after = (time.perf_counter(), _process_cpu(server)[1], _cluster(postmaster))
                totals = phases[_phase(method, args)]
                for i in range(3):
                    totals[i] += after[i] - before[i]

        setattr(asyncpg.connection.Connection, method, wrapper)

    for method in ("execute", "copy_to_table", "fetch", "fetchval", "fetchrow"):
        timed(method)

    async def run() -> dict[str, Any]:
        store = await postgres.connect(url, min_size=1, max_size=1)
        try:
            started, cpu = time.perf_counter(), time.process_time()
            result = await import_file(store.db, dataset.TENANT, path)
            return {
                "seconds": time.perf_counter() - started,
                "client_cpu": time.process_time() - cpu,
                "count": result.count,
                "phases": {name: dict(zip(_COLUMNS, v, strict=True)) for name, v in phases.items()},
            }
        finally:
            await store.close()

    print(json.dumps(asyncio.run(run())))


_COLUMNS = ("wall", "backend_cpu", "cluster_cpu")


def _cluster(postmaster: int | None) -> float:
    return _cluster_cpu(postmaster) if postmaster is not None else 0.0


def one_round(checkout: Path, args: argparse.Namespace, ndjson: Path) -> dict[str, Any]:
    name = f"authz_phases_{secrets.token_hex(4)}"
    url = f"{args.postgres.rstrip('/')}/{name}"
    asyncio.run(import_bench._admin(args.postgres, f'CREATE DATABASE "{name}"'))
    try:
        import_bench._cli(checkout, ["migrate", "--database-url", url])
        asyncio.run(import_bench._register(url))
        if args.into != "empty":  # the same data first, by this checkout, not timed
            tenant = "other" if args.into == "beside" else dataset.TENANT
            setup = ["import", str(ndjson), "--tenant", tenant, "--create-tenant"]
            import_bench._cli(BENCH_DIR.parent, [*setup, "--database-url", url, "--no-progress"])
        command = [sys.executable, __file__, "--child", str(checkout), url, str(ndjson)]
        if args.postmaster_pid is not None:
            command += ["--postmaster-pid", str(args.postmaster_pid)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHZ_")}
        out = subprocess.run(command, check=True, cwd=checkout, env=env, capture_output=True)
        return dict(json.loads(out.stdout))
    finally:
        asyncio.run(
            import_bench._admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


def table(results: dict[str, list[dict[str, Any]]], cluster: bool) -> str:
    names = list(results)
    phases = list(dict.fromkeys(p for rounds in results.values() for p in rounds[0]["phases"]))
    columns = ["wall s", "backend CPU s", *(["cluster CPU s"] if cluster else [])]
    head = "| phase | " + " | ".join(f"{n}: {c}" for n in names for c in columns) + " |"
    lines = [head, "|---|" + "---:|" * (len(names) * len(columns))]
    keys = _COLUMNS[: len(columns)]
    for phase in phases:
        cells = [
            f"{statistics.median(r['phases'].get(phase, {}).get(k, 0.0) for r in results[n]):.2f}"
            for n in names
            for k in keys
        ]
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    for label, key in (("whole import", "seconds"), ("client CPU", "client_cpu")):
        cells = []
        for n in names:
            median = statistics.median(r[key] for r in results[n])
            cells += [f"{median:.2f}"] + [""] * (len(columns) - 1)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--documents", type=int, default=460_000, help="460,000: 978,970 rows")
    p.add_argument("--baseline", type=Path, help="another checkout to time in the same rounds")
    p.add_argument("--baseline-label", default="baseline")
    p.add_argument("--postmaster-pid", type=Path, help="postmaster.pid of a cluster of your own")
    p.add_argument(
        "--into",
        choices=["empty", "beside", "replacing"],
        default="empty",
        help="an empty database (default: the first import, indexes rebuilt); one holding "
        "the same rows in another tenant (first import, indexes kept); or holding them in "
        "the tenant itself (the staged path: every row replaced)",
    )
    p.add_argument(
        "--postgres",
        default=os.environ.get("AUTHZ_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432"),
    )
    p.add_argument("--child", nargs=3, metavar=("CHECKOUT", "URL", "FILE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    postmaster = None
    if args.postmaster_pid is not None:
        postmaster = int(args.postmaster_pid.read_text().split()[0])
    if args.child:
        checkout, url, path = args.child
        child(Path(checkout), url, Path(path), postmaster)
        return 0
    data = dataset.generate(42, replace(dataset.DEFAULT, documents=args.documents))
    checkouts = {"this checkout": BENCH_DIR.parent}
    if args.baseline is not None:
        checkouts[args.baseline_label] = args.baseline.resolve()
    print(f"import phases: {len(data.rows):,} relationships into {args.into}, {args.rounds} rounds")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    started_at = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="authz-import-phases-") as tmp:
        ndjson = Path(tmp) / "relationships.ndjson"
        data.write_ndjson(ndjson)
        for rep in range(args.rounds):
            order = list(checkouts.items())
            for name, checkout in order if rep % 2 == 0 else reversed(order):
                r = one_round(checkout, args, ndjson)
                results[name].append(r)
                print(f"  round {rep + 1} {name:<14} {r['seconds']:6.2f} s", flush=True)
                if r["count"] != len(data.rows):
                    print(f"  WRONG: {r['count']:,} rows imported")
                    return 1
    report = {
        "benchmark": "import-phases",
        "started_at": started_at.isoformat(timespec="seconds"),
        "relationships": len(data.rows),
        "into": args.into,
        "loadavg_at_end": list(os.getloadavg()),
        "checkouts": {name: str(path) for name, path in checkouts.items()},
        "rounds": results,
    }
    stamp = report["started_at"].replace(":", "").replace("-", "")[:15]
    out = BENCH_DIR / "results" / f"import-phases-{args.into}-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{table(results, postmaster is not None)}\n\nraw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
