"""Scenarios of the Check benchmark and its report: summary rows, ratios, markdown.

Kept apart from check_bench.py (which runs things) so the report can be rebuilt from a
results JSON without running anything:

    python benchmarks/check_report.py benchmarks/results/check-....json [--readme]
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "README",
    "Scenario",
    "ServerConfig",
    "build_matrix",
    "markdown_table",
    "ratio_lines",
    "ratios",
    "readme_section",
    "summarize",
    "write_readme",
]

README = Path(__file__).resolve().parent / "README.md"
MARK_START = "<!-- check-bench:start -->"
MARK_END = "<!-- check-bench:end -->"

# ---------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class ServerConfig:
    name: str
    kind: str  # "echo" | "authz"
    workers: int
    log_mode: str = "off"
    trace_ratio: float = 0.0
    auth: bool = True  # API key checked on every call (the default of `authz serve`)


@dataclass(frozen=True)
class Scenario:
    config: ServerConfig
    workload: str  # loadgen workload: hot | miss | strong

    @property
    def name(self) -> str:
        label = {"hot": "cache hit", "miss": "cache miss", "strong": "fully_consistent"}
        if self.config.kind == "echo":
            return f"echo ceiling, {self.config.workers}w"
        return f"{label[self.workload]}, {self.config.name}"


def build_matrix(trace_ratio: float) -> list[tuple[ServerConfig, list[str]]]:
    echo2 = ServerConfig("echo-2w", "echo", 2)
    echo1 = ServerConfig("echo-1w", "echo", 1)
    return [
        (echo2, ["hot"]),
        (ServerConfig("2w log=off", "authz", 2, "off"), ["hot", "miss", "strong"]),
        (ServerConfig("2w log=buffered", "authz", 2, "buffered"), ["hot", "miss"]),
        (ServerConfig("2w log=durable", "authz", 2, "durable"), ["hot", "miss"]),
        (
            ServerConfig(f"2w log=off trace={trace_ratio:g}", "authz", 2, "off", trace_ratio),
            ["hot"],
        ),
        (ServerConfig("2w log=off auth=off", "authz", 2, "off", auth=False), ["hot"]),
        (echo1, ["hot"]),
        (ServerConfig("1w log=off", "authz", 1, "off"), ["hot", "miss"]),
    ]


# ---------------------------------------------------------------------------------------
# Summary and report


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def summarize(
    measurements: list[dict[str, Any]], matrix: list[tuple[ServerConfig, list[str]]]
) -> list[dict[str, Any]]:
    """One row per scenario, in matrix order: medians over rounds, errors summed."""
    rows: list[dict[str, Any]] = []
    seen: list[str] = []
    for m in measurements:
        if m["scenario"] not in seen:
            seen.append(m["scenario"])
    matrix_order = {Scenario(c, w).name: (c, w) for c, ws in matrix for w in ws}
    names = list(matrix_order)
    for name in sorted(seen, key=lambda n: names.index(n) if n in names else len(names)):
        group = [m for m in measurements if m["scenario"] == name]
        done = [m for m in group if m["result"] is not None]
        config, workload = matrix_order.get(name, (None, None))
        errors: dict[str, int] = {}
        wrong = 0
        failures: list[str] = [m["error"] for m in group if m["error"]]
        for m in done:
            for code, count in m["result"]["errors"].items():
                errors[code] = errors.get(code, 0) + count
            wrong += m["result"]["wrong"]
            failures += m["result"]["failures"]
        results = [m["result"] for m in done]
        throughputs = [r["throughput"] for r in results]
        rows.append(
            {
                "scenario": name,
                "kind": config.kind if config else "",
                "workers": config.workers if config else None,
                "log": config.log_mode if config and config.kind == "authz" else "",
                "trace_ratio": config.trace_ratio if config else 0.0,
                "auth": config.auth if config else None,
                "workload": workload,
                "rounds": len(done),
                "throughput_median": _median(throughputs),
                "throughput_min": min(throughputs) if throughputs else None,
                "throughput_max": max(throughputs) if throughputs else None,
                "p50_ms": _ms(_median([r["p50_us"] for r in results])),
                "p99_ms": _ms(_median([r["p99_us"] for r in results])),
                "server_cpu_us_per_call": _median([m["server_cpu_us_per_call"] for m in done]),
                "db_cpu_us_per_call": _median([m["db_cpu_us_per_call"] for m in done]),
                "client_cpu_us_per_call": _median([r["client_cpu_us_per_call"] for r in results]),
                "machine_busy_pct": _median([m["machine_busy_pct"] for m in done]),
                "errors": errors,
                "wrong": wrong,
                "failures": failures,
                "flagged": bool(errors or wrong or failures or not done),
            }
        )
    return rows


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def _find(rows: list[dict[str, Any]], **want: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(row.get(k) == v for k, v in want.items()):
            return row
    return None


def ratios(rows: list[dict[str, Any]], trace_ratio: float) -> dict[str, Any]:
    """Ratios between scenarios' medians; None where either side is missing or flagged."""

    def tp(row: dict[str, Any] | None) -> float | None:
        return row["throughput_median"] if row and not row["flagged"] else None

    def cpu(row: dict[str, Any] | None) -> float | None:
        return row["server_cpu_us_per_call"] if row and not row["flagged"] else None

    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def sub(a: float | None, b: float | None) -> float | None:
        return a - b if a is not None and b is not None else None

    def authz(workers: int = 2, **want: Any) -> dict[str, Any] | None:
        plain = {"log": "off", "trace_ratio": 0.0, "auth": True, "workload": "hot"}
        return _find(rows, kind="authz", workers=workers, **{**plain, **want})

    out: dict[str, Any] = {}
    for workers in (2, 1):
        echo, hit = _find(rows, kind="echo", workers=workers), authz(workers)
        out[f"hit_vs_echo_throughput_{workers}w"] = div(tp(hit), tp(echo))
        out[f"hit_vs_echo_cpu_{workers}w"] = div(cpu(echo), cpu(hit))
    variants: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
        "buffered_vs_off_hot": (authz(log="buffered"), authz()),
        "durable_vs_off_hot": (authz(log="durable"), authz()),
        "buffered_vs_off_miss": (authz(log="buffered", workload="miss"), authz(workload="miss")),
        "durable_vs_off_miss": (authz(log="durable", workload="miss"), authz(workload="miss")),
        "trace_vs_off_hot": (authz(trace_ratio=trace_ratio), authz()),
        "auth_on_vs_off_hot": (authz(), authz(auth=False)),
    }
    for name, (other, base) in variants.items():
        out[f"{name}_throughput"] = div(tp(other), tp(base))
        out[f"{name}_cpu_delta_us"] = sub(cpu(other), cpu(base))
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | workers | req/s (median) | min-max | p50 ms | p99 ms | server CPU µs/call | DB CPU µs/call | status |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if row["flagged"]:
            bits = [f"{k} {v}" for k, v in row["errors"].items()]
            if row["wrong"]:
                bits.append(f"{row['wrong']} wrong answers")
            if row["failures"]:
                bits.append("failed: " + row["failures"][0].splitlines()[0][:80])
            if not row["rounds"]:
                bits.append("not measured")
            status = "**FLAGGED**: " + "; ".join(bits)
        else:
            status = f"all OK ({row['rounds']} round{'s' if row['rounds'] != 1 else ''})"
        lines.append(
            f"| {row['scenario']} | {row['workers']} | {_fmt(row['throughput_median'], ',.0f')} | "
            f"{_fmt(row['throughput_min'], ',.0f')}-{_fmt(row['throughput_max'], ',.0f')} | "
            f"{_fmt(row['p50_ms'], '.1f')} | {_fmt(row['p99_ms'], '.1f')} | "
            f"{_fmt(row['server_cpu_us_per_call'], ',.0f')} | "
            f"{_fmt(row['db_cpu_us_per_call'], ',.0f')} | {status} |"
        )
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "not measured" if value is None else f"{value * 100:.0f}%"


def _delta(value: float | None) -> str:
    if value is None:
        return "not measured"
    return f"{(value - 1) * 100:+.0f}%"


def ratio_lines(r: dict[str, Any], trace_ratio: float, tracing_wired: bool) -> list[str]:
    tracing_note = (
        " (spans of sampled calls are built and handed to no exporter, the default "
        "`AUTHZ_TRACE_EXPORTER=none`)"
        if tracing_wired
        else " (tracing is not wired into `authz serve` at this commit: the variable is set "
        "but the server runs the same code as with tracing off, so this is an A/A comparison "
        "and its difference is the run's noise)"
    )

    def both(name: str) -> str:
        return (
            f"{_delta(r.get(f'{name}_throughput'))} throughput, "
            f"{_signed_us(r.get(f'{name}_cpu_delta_us'))} server CPU per call"
        )

    return [
        f"- **Cache-hit Check / echo ceiling**, 2 workers: {_pct(r['hit_vs_echo_throughput_2w'])} "
        f"of the throughput; by server CPU per call (echo µs ÷ Check µs): "
        f"{_pct(r['hit_vs_echo_cpu_2w'])}. With 1 worker: {_pct(r['hit_vs_echo_throughput_1w'])} "
        f"and {_pct(r['hit_vs_echo_cpu_1w'])}.",
        f"- **Decision log** vs off (2 workers), cache hit: buffered {both('buffered_vs_off_hot')}; "
        f"durable {both('durable_vs_off_hot')}. Cache miss: buffered "
        f"{both('buffered_vs_off_miss')}; durable {both('durable_vs_off_miss')}.",
        f"- **Tracing** at {trace_ratio:g} sampling vs off (2 workers, cache hit, log off): "
        f"{both('trace_vs_off_hot')}{tracing_note}.",
        f"- **API-key authentication** on vs off (2 workers, cache hit, log off): "
        f"{both('auth_on_vs_off_hot')}.",
    ]


def _signed_us(value: float | None) -> str:
    return "—" if value is None else f"{value:+.0f} µs"


def write_readme(section: str) -> None:
    block = f"{MARK_START}\n{section.rstrip()}\n{MARK_END}"
    if README.exists():
        text = README.read_text()
        if MARK_START in text and MARK_END in text:
            head, rest = text.split(MARK_START, 1)
            _, tail = rest.split(MARK_END, 1)
            text = head + block + tail
        else:
            text = text.rstrip() + "\n\n## Check over gRPC\n\n" + block + "\n"
    else:
        text = "# Benchmarks\n\n## Check over gRPC\n\n" + block + "\n"
    README.write_text(text)


def readme_section(report: dict[str, Any], table: str, lines: list[str], json_name: str) -> str:
    """The generated text between the README markers: method, table, ratios, caveats."""
    env, opts, summary = report["environment"], report["options"], report["summary"]
    setup = report.get("setup") or {}
    counts = setup.get("counts") or {}
    verify = setup.get("verify") or {}
    pkgs = env["packages"]
    client_cpu = _fmt(_median([row["client_cpu_us_per_call"] for row in summary]), ".0f")
    import_s = _fmt(setup.get("import_s"), ".0f")
    dirty = " + uncommitted changes" if env["git_dirty"] else ""
    parts = [
        "`python benchmarks/check_bench.py` (about 7-8 minutes, 9 with both options below; `--quick` for a smoke run, "
        "`--profile` adds a cProfile of one worker under cache hits, `--h2load` a cross-check "
        "with h2load if nghttp2-client is installed). Raw results: "
        f"`benchmarks/results/{json_name}`; `python benchmarks/check_report.py FILE` reprints "
        "a table, `python benchmarks/plot.py` draws it if matplotlib is installed.",
        "",
        f"Measured {report['started_at'][:16].replace('T', ' ')} UTC on {env['nproc']} cores "
        f"({env['cpu_model'] or 'unknown CPU'}), load average {env['loadavg_at_start'][0]:.1f} "
        f"at start and {env.get('loadavg_at_end', [float('nan')])[0]:.1f} at the end (the "
        f"machine is shared), Python {env['python']}, grpcio {pkgs.get('grpcio', '?')}, "
        f"{str(env['postgres'] or 'PostgreSQL ?').split(' (')[0]}, commit "
        f"{str(env['git_commit'])[:10]}{dirty}.",
        "",
        f"Data (benchmarks/dataset.py, seed 42): {counts.get('users', 0):,} users, "
        f"{counts.get('groups', 0)} groups nested three deep, {counts.get('folders', 0):,} "
        f"folders up to four deep, {counts.get('documents', 0):,} documents, "
        f"{counts.get('relationships', 0):,} relationships, loaded with `authz import` in "
        f"{import_s} s. Permission checked: `document#view = (owner + viewer + folder->view) "
        "- banned` with `folder#view = viewer + parent->view` and `group#member` nesting. "
        "Answers are compared with a reference evaluator written independently of the engine: "
        f"{verify.get('checked_pairs', 0)} pairs at fully_consistent before the load "
        f"({verify.get('wrong_count', 'n/a')} wrong), and every OK answer under load.",
        "",
        "Workloads: **cache hit** cycles through 64 fixed (document, user) pairs, half allowed, "
        "at minimize_latency; **cache miss** asks a pair no earlier request to that server "
        "asked (about 10% allowed: a denial explores every branch); **fully_consistent** "
        "repeats the hot pairs with the cache bypassed and the head revision read from the "
        "database. The **echo ceiling** is a grpc.aio server with the service's process model, "
        "options and message types, answering every Check with one fixed real CheckResponse "
        f"({verify.get('request_bytes', '?')}-byte request, "
        f"{verify.get('response_bytes', '?')}-byte response). Every call carries an API key "
        "(`authorization: Bearer`, bound to the tenant, scope check), as `authz serve` "
        "requires by default; the echo receives the same header and ignores it.",
        "",
        f"Load: {opts['processes']} generator processes x {opts['concurrency']} calls in flight "
        f"over {opts['channels']} connections each (closed loop, {opts['client_loop']} event "
        f"loop), {opts['warmup_s']:g} s warm-up then {opts['duration_s']:g} s measured per "
        f"scenario, {opts['reps']} rounds with every server restarted per round and the order "
        "reversed every other round; medians over rounds. **The generator runs on the same "
        f"{env['nproc']} cores as the server** (it used a median {client_cpu} µs of CPU per "
        "call), so absolute throughput is lower than with a separate client machine; the "
        "ceiling is measured with the same generator in the same rounds, so the ratios are "
        'fair. "Server CPU µs/call" is the CPU time of the server\'s processes over the '
        "measured window divided by the calls completed in it, the figure least disturbed by "
        'the neighbours; "DB CPU" the same for the PostgreSQL backends serving it. Errors of '
        "every phase (warm-up, window, calls still in flight at the end) are counted per status "
        "code; a silently dropped call would show as DEADLINE_EXCEEDED (5 s client deadline).",
        "",
        table,
        "",
        *lines,
    ]
    parts += _caveats(report)
    return "\n".join(parts)


def _function_name(profiled: str) -> str:
    """`authz_service/api/permissions.py:54(Check)` -> `api/permissions.py:Check`."""
    path, _, rest = profiled.partition(":")
    name = rest[rest.find("(") + 1 : -1] if "(" in rest else rest
    return f"{path.removeprefix('authz_service/')}:{name}"


def _h2load_lines(h2load: dict[str, Any]) -> list[str]:
    medians = h2load.get("median_throughput") or {}
    echo, hit = medians.get("echo-2w"), medians.get("2w log=off")
    if not echo or not hit:
        return []
    runs = h2load.get("runs") or [{}]
    bad = [
        r["config"]
        for r in runs
        if r.get("http_other") or set(r.get("status_check_after", {})) - {"OK"}
    ]
    checked = "every status OK" if not bad else f"ERRORS in {', '.join(sorted(set(bad)))}"
    return [
        "",
        f"Cross-check with h2load (a C client: {runs[0].get('connections')} connections x "
        f"{runs[0].get('streams_per_connection')} streams, one hot pair, 2 workers, log off; "
        "h2load cannot see grpc-status, so 200 calls are checked through a real client after "
        f"each run: {checked}): echo {echo:,.0f} req/s, cache-hit Check {hit:,.0f} req/s, "
        f"ratio {hit / echo * 100:.0f}%.",
    ]


def _caveats(report: dict[str, Any]) -> list[str]:
    summary = report["summary"]
    out: list[str] = []
    if report["environment"].get("source_changed_during_run"):
        out += [
            "",
            "The service's source changed while this run lasted (the tree is shared with "
            "work in progress): rounds may have measured slightly different code.",
        ]
    setup_error = (report.get("setup") or {}).get("error")
    if setup_error:
        out += ["", f"Setup failed ({setup_error}); only what did not need it was measured."]
    flagged = [row["scenario"] for row in summary if row["flagged"] and row["rounds"]]
    if flagged:
        out += ["", "Flagged (errors or wrong answers, see the JSON): " + ", ".join(flagged) + "."]
    not_measured = [row["scenario"] for row in summary if not row["rounds"]]
    if not_measured:
        out += ["", "Not measured in this run: " + ", ".join(not_measured) + "."]
    logs = report.get("decision_log_check") or {}
    if logs:
        short = [k for k, v in logs.items() if v["records"] < v["ok_responses_received"]]
        per_record = [v["bytes"] / v["records"] for v in logs.values() if v["records"]]
        size = (
            f" (about {statistics.median(per_record):.0f} bytes per record)" if per_record else ""
        )
        verdict = "in every run" if not short else f"EXCEPT in {', '.join(short)} (see the JSON)"
        out += [
            "",
            f"Decision log: every OK answer the clients received has a record {verdict}{size}.",
        ]
    out += _h2load_lines(report.get("h2load") or {})
    profile = report.get("profile") or {}
    own = [r for r in profile.get("top_cumtime", []) if "authz_service/" in r["function"]]
    loop = [r for r in profile.get("top_cumtime", []) if r["function"].endswith("(_run_once)")]
    if own and loop:
        top = ", ".join(
            f"`{_function_name(row['function'])}` {row['cumtime_us_per_call']:.0f}"
            for row in own[:10]
        )
        out += [
            "",
            "Where a cache-hit Check's time goes (cProfile of one worker in steady state, log "
            "off; microseconds per call including callees, inflated by the profiler): the "
            f"event loop spends {loop[0]['cumtime_us_per_call']:.0f} per call in all, of which "
            f"the service's own code: {top}. The rest is grpc.aio's Cython layer, protobuf and "
            "asyncio, which the echo server pays too.",
        ]
    return out


def main(argv: list[str]) -> int:
    """Print the table and ratios of a results file; with --readme, rewrite the section."""
    report = json.loads(Path(argv[0]).read_text())
    table = markdown_table(report["summary"])
    lines = ratio_lines(report["ratios"], report["options"]["trace_ratio"], report["tracing_wired"])
    print(table + "\n\n" + "\n".join(lines))
    if "--readme" in argv[1:]:
        write_readme(readme_section(report, table, lines, Path(argv[0]).name))
        print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
