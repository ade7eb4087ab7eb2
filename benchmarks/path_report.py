"""Tables, targets and the README section of the decision-path benchmark
(benchmarks/path_bench.py); `python benchmarks/path_report.py FILE` reprints a result."""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- path-bench:start -->", "<!-- path-bench:end -->"

Median = Callable[[list[Any]], Any]

# (label, path into one round's results, format)
ROWS: list[tuple[str, tuple[str, ...], str]] = [
    ("cache hit, req/s", ("cache_hit", "throughput"), "{:,.0f}"),
    ("uncached Check max, req/s", ("uncached_max", "throughput"), "{:,.0f}"),
    ("uncached, open loop at half max: p50 ms", ("uncached_half", "p50_ms"), "{:.2f}"),
    ("uncached, open loop at half max: p99 ms", ("uncached_half", "p99_ms"), "{:.2f}"),
    (
        "same, p99 of the server's handler (histogram bucket bound), ms",
        ("uncached_half", "handler_p99_ms"),
        "{:.2f}",
    ),
    (
        "same, p99 of the generator's own delay before sending, ms",
        ("uncached_half", "send_lag_p99_ms"),
        "{:.2f}",
    ),
    ("cache hits under 20 writes/s: hit rate", ("hits_under_writes", "hit_rate"), "{:.1%}"),
    ("cache hits under 20 writes/s: req/s", ("hits_under_writes", "throughput"), "{:,.0f}"),
    ("CheckBulk(100) random pairs, decisions/s", ("bulk", "decisions_per_s"), "{:,.0f}"),
    ("CheckBulk(100) random pairs, p99 ms", ("bulk", "p99_ms"), "{:.1f}"),
    ("CheckBulk(100) same pairs, decisions/s", ("bulk_hot", "decisions_per_s"), "{:,.0f}"),
    ("CheckBulk(100) same pairs, p99 ms", ("bulk_hot", "p99_ms"), "{:.1f}"),
    ("ListPermissions (3), calls/s", ("list", "calls_per_s"), "{:,.0f}"),
    ("ListPermissions (3), decisions/s", ("list", "decisions_per_s"), "{:,.0f}"),
    ("LookupSubjects group:all, s", ("lookup_subjects", "seconds"), "{:.2f}"),
    ("LookupSubjects group:all, subjects streamed", ("lookup_subjects", "streamed"), "{:,.0f}"),
    ("LookupResources p50 ms", ("lookup_resources", "p50_ms"), "{:,.0f}"),
    ("LookupResources p99 ms", ("lookup_resources", "p99_ms"), "{:,.0f}"),
    ("index warm-up after start, s", ("index_warm_s",), "{:.1f}"),
    ("largest worker's memory (RSS) after warm-up, MB", ("worker_rss_mb",), "{:,.0f}"),
]


def _get(found: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = found
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def medians(scale: dict[str, Any], median: Median) -> dict[str, Any]:
    return {label: median([_get(r, path) for r in scale["rounds"]]) for label, path, _ in ROWS}


def problems(scale: dict[str, Any]) -> list[str]:
    """Every non-OK status and wrong answer of every round."""
    found: list[str] = []
    if "error" in scale["setup"]:
        found.append(f"setup: {scale['setup']['error']}")
    wrong = scale["setup"].get("verify", {}).get("wrong_count")
    if wrong:
        found.append(f"{wrong} wrong answers at fully_consistent before the load")
    for i, r in enumerate(scale["rounds"], 1):
        for name, part in r.items():
            if not isinstance(part, dict):
                continue
            errors = part.get("errors") or {
                k: v for k, v in (part.get("statuses") or {}).items() if k != "OK"
            }
            if part.get("status", "OK") != "OK":
                errors = {part["status"]: 1}
            if errors:
                found.append(f"round {i} {name}: {errors}")
            if part.get("wrong"):
                found.append(f"round {i} {name}: {part['wrong']} wrong answers")
            if name == "lookup_subjects" and part.get("streamed") != part.get("expected"):
                found.append(f"round {i} {name}: {part.get('streamed')} of {part.get('expected')}")
    return found


def targets(by_scale: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's targets, judged on the medians."""
    lines: list[str] = []
    big = by_scale.get("1m") or next(iter(by_scale.values()), None)
    small = by_scale.get("10k")
    if big is None:
        return lines
    hit, miss = big["cache hit, req/s"], big["uncached Check max, req/s"]
    if hit and miss:
        lines.append(f"uncached max / cache hit = {miss / hit:.0%} (target >= 40%)")
    p99 = big["uncached, open loop at half max: p99 ms"]
    if p99 is not None:
        lines.append(f"p99 at half max = {p99:.2f} ms (target <= 5 ms)")
    if small is not None and big is not small and p99:
        base = small["uncached, open loop at half max: p99 ms"]
        if base:
            lines.append(f"p99 1M / p99 10k = {p99 / base:.2f}x (target <= 1.5x)")
    rate = big["cache hits under 20 writes/s: hit rate"]
    if rate is not None:
        lines.append(f"hit rate under 20 writes/s = {rate:.1%} (target >= 90%)")
    hot, cold = (
        big["CheckBulk(100) same pairs, decisions/s"],
        big["CheckBulk(100) random pairs, decisions/s"],
    )
    if hot is not None and cold is not None:
        lines.append(
            f"CheckBulk(100) = {hot:,.0f} decisions/s on the same pairs, {cold:,.0f} on "
            "random pairs (target >= 100,000)"
        )
    return lines


def table(by_scale: dict[str, dict[str, Any]], counts: dict[str, int]) -> str:
    names = list(by_scale)
    head = "| measurement | " + " | ".join(f"{n} ({counts[n]:,} rel.)" for n in names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]
    for label, _path, fmt in ROWS:
        cells = []
        for n in names:
            value = by_scale[n][label]
            cells.append("—" if value is None else fmt.format(value))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(report: dict[str, Any], name: str, median: Median) -> str:
    by_scale = {s["scale"]: medians(s, median) for s in report["scales"]}
    counts = {s["scale"]: s["counts"]["relationships"] for s in report["scales"]}
    env = report["environment"]
    rounds = report["options"]["reps"]
    text = [
        f"`python benchmarks/path_bench.py` ({report['runtime_s'] / 60:.0f} minutes; "
        "`--quick` for a smoke run). Raw results: "
        f"`benchmarks/results/{name}`; `python benchmarks/path_report.py FILE` reprints it.",
        "",
        f"Measured {report['started_at'][:16].replace('T', ' ')} UTC on {env['nproc']} cores "
        f"shared with other work (load average {env.get('loadavg_at_start')} at start), "
        f"commit {str(env.get('git_commit'))[:10]}{' (uncommitted changes)' if env.get('git_dirty') else ''}; medians of {rounds} rounds, each on a "
        "fresh server (2 workers, decision log off, API keys on). Noisy: the generator "
        "runs on the same 2 cores, and other sessions shared the machine.",
        "",
        table(by_scale, counts),
        "",
        *[f"- {line}" for line in targets(by_scale)],
    ]
    found = [f"{s['scale']}: {p}" for s in report["scales"] for p in problems(s)]
    text += ["", "Statuses and answers: " + ("; ".join(found) if found else "all OK, all correct")]
    return "\n".join(text)


def write_readme(section: str) -> None:
    current = README.read_text()
    block = f"{START}\n{section}\n{END}"
    if START in current:
        before, rest = current.split(START, 1)
        after = rest.split(END, 1)[1]
        README.write_text(before + block + after)
    else:
        README.write_text(current.rstrip() + "\n\n## Decision path\n\n" + block + "\n")


def publish(report: dict[str, Any], path: Path, median: Median, *, update_readme: bool) -> int:
    section = render(report, path.name, median)
    print("\n" + section + f"\n\nraw results: {path}")
    if update_readme:
        write_readme(section)
        print(f"updated {README}")
    with contextlib.suppress(ImportError):
        import matplotlib  # noqa: F401
        from plot import plot_path

        print(f"plot: {plot_path(path)}")
    return 1 if any(problems(s) for s in report["scales"]) else 0


def median_of_present(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Reprint a path_bench result as its table.")
    parser.add_argument("result", type=Path, help="a benchmarks/results/path-*.json file")
    source = parser.parse_args(argv).result
    print(render(json.loads(source.read_text()), source.name, median_of_present))
    return 0


if __name__ == "__main__":
    sys.exit(main())
