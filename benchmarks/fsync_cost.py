"""CPU and wall time of one durable write round, by the way a segment is made durable.

The decision log's durable mode pays one write+fsync per round (docs/performance.md,
"The decision log's cost"). This measures, on the disk holding `--dir`, what one round
costs this thread (user + system CPU, from getrusage) and in wall time, for rounds of 1,
4 and 16 lines of 700 bytes, with:

- `append+fsync`: O_APPEND and fsync, what the file sink does;
- `append+fdatasync`: the same with fdatasync (the size still changes, so the inode is
  still journalled);
- `zero-filled+pwrite+fdatasync`: a segment written full of zeros beforehand, then
  overwritten in place: no size or extent change, so fdatasync flushes only data. It
  would change the stored format (a crash leaves NULs after the last line);
- `fallocate+pwrite+fdatasync`: space reserved with posix_fallocate: its extents are
  unwritten, so the first write to each still changes metadata.

Rounds are interleaved, repeated, and the median is printed. The CPU the filesystem's
journal thread spends is not counted (it is not the process's). Usage:

    python benchmarks/fsync_cost.py --dir /path/on/the/log/disk --rounds 300
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

LINE = b"x" * 699 + b"\n"
SEGMENT = 16 * 1024 * 1024  # more than the rounds write


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def _appending(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _zero_filled(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    chunk = b"\0" * (1 << 20)
    for _ in range(SEGMENT // len(chunk)):
        os.write(fd, chunk)
    os.fsync(fd)
    return fd


def _fallocated(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.posix_fallocate(fd, 0, SEGMENT)
    os.fsync(fd)
    return fd


def _append(fd: int, data: bytes, _offset: int) -> None:
    os.write(fd, data)


def _overwrite(fd: int, data: bytes, offset: int) -> None:
    os.pwrite(fd, data, offset)


Option = tuple[Callable[[Path], int], Callable[[int, bytes, int], None], Callable[[int], None]]
OPTIONS: dict[str, Option] = {
    "append+fsync": (_appending, _append, os.fsync),
    "append+fdatasync": (_appending, _append, os.fdatasync),
    "zero-filled+pwrite+fdatasync": (_zero_filled, _overwrite, os.fdatasync),
    "fallocate+pwrite+fdatasync": (_fallocated, _overwrite, os.fdatasync),
}


def measure(directory: Path, option: Option, lines: int, rounds: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per round."""
    setup, write, sync = option
    path = directory / "segment"
    fd = setup(path)
    data = LINE * lines
    try:
        cpu, wall = _thread_cpu(), time.perf_counter()
        for n in range(rounds):
            write(fd, data, n * len(data))
            sync(fd)
        return (_thread_cpu() - cpu) / rounds * 1e6, (time.perf_counter() - wall) / rounds * 1e6
    finally:
        os.close(fd)
        path.unlink()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--dir", type=Path, help="a directory on the disk to measure (default: a temp dir)"
    )
    p.add_argument("--rounds", type=int, default=300, help="write rounds per measurement")
    p.add_argument("--repeat", type=int, default=3, help="measurements per option, interleaved")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="fsync-cost-") as tmp:
        print("| lines per round | option | CPU µs per round | wall µs per round |")
        print("|---:|---|---:|---:|")
        for lines in (1, 4, 16):
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in OPTIONS}
            for _ in range(args.repeat):
                for name, option in OPTIONS.items():
                    results[name].append(measure(Path(tmp), option, lines, args.rounds))
            for name, runs in results.items():
                cpu = statistics.median(c for c, _ in runs)
                wall = statistics.median(w for _, w in runs)
                print(f"| {lines} | {name} | {cpu:,.0f} | {wall:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
