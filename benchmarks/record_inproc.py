"""A logged Check's record in process: the event loop's CPU per record, without gRPC.

    python benchmarks/record_inproc.py [--calls 20000] [--rounds 5]
                                       [--log buffered|durable] [--concurrency 32] [--profile]

Calls `AuditTrail.check` for one cache-hit Check (API key, no context, no explanation)
through a real `DecisionLogWriter` in a temporary directory, `--concurrency` calls at a
time, each inside `expecting()` as the service wraps it. Reports the CPU time of the
event loop's thread per call (median and range of rounds): building the record,
chaining it and queueing it, and in durable mode waiting for and resolving its fsync.
The writer thread's own CPU (write, fsync) is not counted. `--profile` prints a
cProfile of one round by own time.

Only the audit trail and the writer are used, so the script runs against any checkout
that has them: to compare, copy it into the other checkout and run it there.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authz_service.decisionlog import DecisionLogConfig, DecisionLogWriter
from authz_service.engine import CheckItem, CheckResult, Decision, Snapshot
from authz_service.model import ObjectRef, SubjectRef
from authz_service.schema import compile_schema
from authz_service.service.audit import AuditTrail, CallInfo

SCHEMA = compile_schema("definition user {}\ndefinition document { relation viewer: user }")


async def _round(trail: AuditTrail, calls: int, concurrency: int) -> float:
    """Thread CPU seconds of `calls` logged Checks, `concurrency` at a time."""
    snap = Snapshot("bench", 12_345, SCHEMA, datetime.now(UTC))
    item = CheckItem(ObjectRef("document", "doc-1234"), "viewer", SubjectRef("user", "u-42"))
    result = CheckResult(Decision.ALLOWED)
    call = CallInfo(credential_id="0123456789abcdef")

    async def worker(count: int) -> None:
        for _ in range(count):
            with trail.expecting():
                started = time.perf_counter()
                await trail.check(snap, item, result, call, cache_hit=True, started=started)

    per_worker = calls // concurrency
    started = time.thread_time()
    await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
    return time.thread_time() - started


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = DecisionLogConfig(Path(tmp), mode=args.log, max_queue=1_000_000)
        async with DecisionLogWriter(config) as writer:
            trail = AuditTrail(writer)
            await _round(trail, args.calls // 5, args.concurrency)  # warm up
            calls = args.calls // args.concurrency * args.concurrency
            per_call = [
                await _round(trail, calls, args.concurrency) / calls * 1e6
                for _ in range(args.rounds)
            ]
            print(
                f"log={args.log} concurrency={args.concurrency} calls={calls}: "
                f"{statistics.median(per_call):.1f} µs event-loop CPU per logged Check "
                f"(rounds {min(per_call):.1f}-{max(per_call):.1f})"
            )
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                await _round(trail, calls, args.concurrency)
                profile.disable()
                pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log", choices=["buffered", "durable"], default="buffered")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--profile", action="store_true")
    asyncio.run(main(parser.parse_args()))
