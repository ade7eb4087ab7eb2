"""Bar chart of a Check benchmark result: median throughput per scenario, min-max as
error bars, the echo ceilings in grey. Needs matplotlib, which the project does not
install; without it this prints a note and exits 0.

    python benchmarks/plot.py [benchmarks/results/check-....json]   # default: the newest
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def plot(path: Path) -> Path:
    """Write `<path without .json>.png` next to the results file and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(path.read_text())
    rows = [r for r in report["summary"] if r["throughput_median"] is not None]
    names = [r["scenario"] for r in rows]
    medians = [r["throughput_median"] for r in rows]
    low = [r["throughput_median"] - r["throughput_min"] for r in rows]
    high = [r["throughput_max"] - r["throughput_median"] for r in rows]
    colors = [
        "#9e9e9e" if r["kind"] == "echo" else ("#c62828" if r["flagged"] else "#1565c0")
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    ax.barh(names, medians, xerr=[low, high], color=colors, capsize=3)
    ax.invert_yaxis()
    ax.set_xlabel("Check calls per second (median over rounds; bars: min-max)")
    env = report["environment"]
    ax.set_title(
        f"Check over gRPC, {env['nproc']} cores shared with the load generator "
        f"({report['started_at'][:10]})",
        fontsize=10,
    )
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_path(path: Path) -> Path:
    """The decision-path benchmark (path_bench.py): per scale, the median req/s of cache
    hits, uncached Check and cache hits under writes, and CheckBulk decisions/s / 100."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from path_report import median_of_present, medians

    report = json.loads(path.read_text())
    labels = [
        "cache hit, req/s",
        "uncached Check max, req/s",
        "cache hits under 20 writes/s: req/s",
        "ListPermissions (3), calls/s",
    ]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(report["scales"]))
    for i, scale in enumerate(report["scales"]):
        values = medians(scale, median_of_present)
        heights = [values[label] or 0 for label in labels]
        xs = [x + i * width for x in range(len(labels))]
        ax.bar(xs, heights, width, label=f"{scale['scale']} relationships")
    ax.set_xticks([x + width / 2 for x in range(len(labels))], labels, fontsize=8)
    ax.set_ylabel("calls per second (median over rounds)")
    ax.legend()
    ax.set_title(f"Decision path over gRPC ({report['started_at'][:10]})", fontsize=10)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str]) -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed; no plot (pip install matplotlib to get one)")
        return 0
    if argv:
        path = Path(argv[0])
    else:
        candidates = sorted(RESULTS.glob("check-*.json"))
        if not candidates:
            print("no results in benchmarks/results; run benchmarks/check_bench.py first")
            return 1
        path = candidates[-1]
    print(plot_path(path) if path.name.startswith("path-") else plot(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
