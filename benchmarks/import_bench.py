"""`authz import` of the seeded data set at ~1M relationships: relationships per second.

    python benchmarks/import_bench.py              # 3 rounds of ~1M relationships
    python benchmarks/import_bench.py --quick      # 1 round of ~100k
    python benchmarks/import_bench.py --baseline /path/to/other/checkout

What one run does: generates benchmarks/dataset.py's data (seed 42) with `--documents`
documents (460,000 give about 1M relationships), writes it once as NDJSON, then per
round creates a fresh database on the local PostgreSQL, migrates it (not timed), and
times the whole `authz import FILE --tenant bench` command, progress bar on (to a file),
as a user runs it. After each round it counts the tenant's rows: a round that did not
write exactly every relationship is flagged. Medians over rounds; with `--baseline` the
same rounds run the command of another checkout too, interleaved, so both see the same
machine. Writes benchmarks/results/import-<stamp>.json and (full runs) the "Import"
section of benchmarks/README.md between its markers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import dataset  # noqa: E402

README = BENCH_DIR / "README.md"
MARK_START, MARK_END = "<!-- import-bench:start -->", "<!-- import-bench:end -->"


async def _admin(base: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{base.rstrip('/')}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _register(url: str) -> None:
    """Register the tenant the way migration 0005 registers existing ones: `authz import`
    refuses an unknown tenant, and the checkout measured against predates the flag
    that creates it (the row is the same on both schemas)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("INSERT INTO tenants (tenant, head) VALUES ($1, 0)", dataset.TENANT)
    finally:
        await conn.close()


async def _count(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        sql = "SELECT count(*) FROM relationships WHERE tenant = $1 AND deleted_rev IS NULL"
        return int(await conn.fetchval(sql, dataset.TENANT))
    finally:
        await conn.close()


def _cli(checkout: Path, args: list[str], stderr: Any = subprocess.DEVNULL) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHZ_")}
    command = [sys.executable, "-m", "authz_service", *args]
    subprocess.run(command, check=True, cwd=checkout, env=env, stderr=stderr)


def one_round(checkout: Path, base: str, ndjson: Path, expected: int, work: Path) -> dict[str, Any]:
    name = f"authz_import_{secrets.token_hex(4)}"
    url = f"{base.rstrip('/')}/{name}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        _cli(checkout, ["migrate", "--database-url", url])
        asyncio.run(_register(url))
        command = ["import", str(ndjson), "--tenant", dataset.TENANT, "--database-url", url]
        progress = work / f"progress-{name}.txt"
        with progress.open("w") as bar:  # the progress bar is drawn, into a file
            started = time.perf_counter()
            _cli(checkout, command, stderr=bar)
            seconds = time.perf_counter() - started
        stored = asyncio.run(_count(url))
        return {
            "seconds": seconds,
            "per_second": expected / seconds,
            "stored": stored,
            "exact": stored == expected,
            "progress_updates": progress.read_text().count("\r"),
        }
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rounds": len(rounds),
        "seconds_median": statistics.median(r["seconds"] for r in rounds),
        "per_second_median": statistics.median(r["per_second"] for r in rounds),
        "per_second_min_max": [
            min(r["per_second"] for r in rounds),
            max(r["per_second"] for r in rounds),
        ],
        "all_exact": all(r["exact"] for r in rounds),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 round of about 100k relationships")
    p.add_argument("--reps", type=int, help="rounds (default 3; quick 1)")
    p.add_argument("--documents", type=int, help="documents (default 460000; quick 40000)")
    p.add_argument("--baseline", type=Path, help="another checkout to time in the same rounds")
    p.add_argument("--baseline-label", default="baseline", help="its name in the table")
    p.add_argument(
        "--postgres",
        default=os.environ.get("AUTHZ_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432"),
    )
    p.add_argument("--readme", action=argparse.BooleanOptionalAction, default=None)
    args = p.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    # The Check benchmark's shape with only the document count changed (460,000 documents
    # give 978,970 relationships).
    documents = args.documents or (40_000 if args.quick else 460_000)
    started_at = dt.datetime.now(dt.UTC)
    data = dataset.generate(42, replace(dataset.DEFAULT, documents=documents))
    expected = len(data.rows)
    checkouts = {"this checkout": ROOT}
    if args.baseline is not None:
        checkouts[args.baseline_label] = args.baseline.resolve()
    print(f"import benchmark: {expected:,} relationships, {reps} rounds, {list(checkouts)}")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory(prefix="authz-import-bench-") as tmp:
        work = Path(tmp)
        ndjson = work / "relationships.ndjson"
        data.write_ndjson(ndjson)
        for rep in range(reps):
            order = list(checkouts.items())
            for name, checkout in order if rep % 2 == 0 else reversed(order):
                r = one_round(checkout, args.postgres, ndjson, expected, work)
                results[name].append(r)
                flag = "" if r["exact"] else f"  WRONG: {r['stored']:,} rows stored"
                print(
                    f"  round {rep + 1} {name:<14} {r['seconds']:6.2f} s  "
                    f"{r['per_second']:9,.0f} relationships/s{flag}",
                    flush=True,
                )
    report = {
        "benchmark": "import",
        "started_at": started_at.isoformat(timespec="seconds"),
        "relationships": expected,
        "counts": data.counts(),
        "nproc": os.cpu_count(),
        "loadavg_at_end": list(os.getloadavg()),
        "python": platform.python_version(),
        "commit": _commit(),
        "checkouts": {name: str(path) for name, path in checkouts.items()},
        "rounds": results,
        "summary": {name: summarize(rounds) for name, rounds in results.items()},
    }
    return publish(report, args)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()
    except OSError:
        return "unknown"


def publish(report: dict[str, Any], args: argparse.Namespace) -> int:
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    stamp = report["started_at"].replace(":", "").replace("-", "")[:15]
    path = results / f"import-{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "| checkout | relationships | seconds (median) | relationships/s (median) | min-max | rows |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, s in report["summary"].items():
        low, high = s["per_second_min_max"]
        rows = f"exact ({s['rounds']} rounds)" if s["all_exact"] else "WRONG COUNT"
        lines.append(
            f"| {name} | {report['relationships']:,} | {s['seconds_median']:.1f} | "
            f"{s['per_second_median']:,.0f} | {low:,.0f}-{high:,.0f} | {rows} |"
        )
    table = "\n".join(lines)
    print(f"\n{table}\n\nraw results: {path}")
    if args.readme if args.readme is not None else not args.quick:
        _write_readme(report, table, path.name)
        print(f"updated {README}")
    return 0 if all(s["all_exact"] for s in report["summary"].values()) else 1


def _write_readme(report: dict[str, Any], table: str, json_name: str) -> None:
    counts = report["counts"]
    section = (
        f"`python benchmarks/import_bench.py` (`--quick` for 100k, `--baseline DIR` to time another "
        f"checkout in the same rounds). Raw results: `benchmarks/results/{json_name}`.\n\n"
        f"Measured {report['started_at']} on {report['nproc']} cores (shared; load average "
        f"{report['loadavg_at_end'][0]:.1f} at the end), commit {report['commit']}, Python "
        f"{report['python']}. Data: benchmarks/dataset.py, seed 42, "
        f"{counts['documents']:,} documents, {report['relationships']:,} relationships, as NDJSON. "
        "Each round times the whole `authz import FILE --tenant bench` command (process start, "
        "parsing, COPY, indexes, commit, ANALYZE) into a fresh, migrated database, progress bar "
        "drawn; then counts the live rows. Medians over rounds.\n\n"
        f"{table}\n"
    )
    block = f"{MARK_START}\n{section.rstrip()}\n{MARK_END}"
    text = README.read_text()
    if MARK_START in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Import\n\n" + block + "\n"
    README.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
