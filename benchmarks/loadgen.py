"""Closed-loop gRPC load generator for Check, with every response's status checked.

`LoadGenerator(processes=2)` spawns that many processes once; each runs one event loop
and, per job, opens `channels` connections of its own (a local subchannel pool, so they
really are separate TCP connections: SO_REUSEPORT spreads connections, not requests,
across server workers) and keeps `concurrency` calls in flight over them. A job is a
warm-up followed by a measured window that starts at the same monotonic instant in every
process (CLOCK_MONOTONIC is system-wide on Linux), so the parent can sample server CPU
over exactly that window.

Every response is classified: OK or the status code of the error (RESOURCE_EXHAUSTED,
DEADLINE_EXCEEDED, UNAVAILABLE, ...), in the warm-up, in the window, and after it (calls
still in flight at the end), and an OK answer's decision is compared with the dataset's
reference evaluator. Only OK, correct answers completed inside the window count as
throughput; any error or wrong answer anywhere flags the run.

A job with `rate` > 0 is open loop instead: each process sends `rate` calls a second on
a fixed schedule whatever the answers do, and a call's latency runs from its scheduled
send time (so a stalled server cannot hide its queue by slowing the generator down:
no coordinated omission).

`scale` picks the data set (benchmarks/dataset.py SCALES) the requests and the
reference come from.

Workloads: `hot` cycles through a small fixed set of (document, user) pairs (cache hits,
once `prime` has asked each pair on every connection so that every server worker's cache
holds them), `miss` asks a pair no earlier request of the run asked
(`dataset.miss_pair`), both at minimize_latency; `strong` is `hot` at fully_consistent,
which bypasses the cache and reads the database's head revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["Job", "LoadGenerator", "RunResult", "percentile"]

CHECK_METHOD = "/authz.v1.PermissionsService/Check"
WORKLOADS = ("hot", "miss", "strong")


@dataclass(frozen=True, slots=True)
class Job:
    target: str
    workload: str
    concurrency: int  # calls in flight per process
    channels: int  # connections per process
    warmup_s: float
    duration_s: float
    start_at: float  # time.monotonic() at which the warm-up starts
    miss_base: int  # first index into dataset.miss_pair for this process and job
    verify: bool  # compare decisions with the reference (not for the echo server)
    prime_only: bool = False  # ask every hot pair once per connection, then stop
    metadata: tuple[tuple[str, str], ...] = ()  # e.g. the API key, sent on every call
    timeout_s: float = 5.0
    rate: float = 0.0  # open loop: calls per second per process (0: closed loop)


@dataclass(slots=True)
class ProcessResult:
    measured: Counter[str] = field(default_factory=Counter)  # status -> count in window
    warmup: Counter[str] = field(default_factory=Counter)
    drain: Counter[str] = field(default_factory=Counter)  # completed after the window
    decisions: Counter[str] = field(default_factory=Counter)
    wrong: int = 0  # OK answers that disagree with the reference evaluator, all phases
    wrong_in_window: int = 0
    latencies_us: bytes = b""  # array('f') of OK calls completed in the window
    # Open loop: array('f') of how late each of those calls was sent after its scheduled
    # time, the generator's own delay (part of its latency, never the server's doing).
    send_lags_us: bytes = b""
    cpu_s: float = 0.0  # process CPU (all threads) during the window
    late_s: float = 0.0  # how late after start_at this process began
    window_s: float = 0.0
    failure: str = ""  # exception that stopped the job, if any


@dataclass(slots=True)
class RunResult:
    job: dict[str, Any]
    processes: int
    ok: int  # OK in the window
    ok_all_phases: int  # OK in warm-up, window and drain: every decision the clients got
    errors: dict[str, int]  # every non-OK status, all phases
    errors_in_window: dict[str, int]
    wrong: int
    decisions: dict[str, int]
    throughput: float  # OK and correct calls per second in the window
    p50_us: float
    p90_us: float
    p99_us: float
    max_us: float
    send_lag_p99_us: float  # open loop: p99 of the generator's delay before sending
    client_cpu_us_per_call: float
    max_late_s: float
    failures: list[str]

    @property
    def flagged(self) -> bool:
        return bool(self.errors or self.wrong or self.failures or self.ok == 0)


def percentile(sorted_values: Any, q: float) -> float:
    if not len(sorted_values):
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


# ---------------------------------------------------------------------------------------
# Child process


class _Requests:
    """Pre-serialized requests, so the generator spends its CPU on gRPC, not protobuf."""

    def __init__(self, seed: int, scale: str) -> None:
        import dataset

        from authz_service.api.gen.authz.v1 import core_pb2, permissions_pb2

        self._dataset = dataset
        data = dataset.generate(seed, scale)
        self._shape = data.shape
        self.reference = data.reference()

        def build(doc: str, user: str, strong: bool) -> bytes:
            consistency = (
                core_pb2.Consistency(fully_consistent=True)
                if strong
                else core_pb2.Consistency(minimize_latency=True)
            )
            return permissions_pb2.CheckRequest(
                tenant=dataset.TENANT,
                resource=core_pb2.ObjectReference(object_type="document", object_id=doc),
                permission="view",
                subject=core_pb2.SubjectReference(
                    object=core_pb2.ObjectReference(object_type="user", object_id=user)
                ),
                consistency=consistency,
            ).SerializeToString()

        pairs = dataset.hot_pairs(data)
        self.hot = [
            (build(dataset.doc_id(d), dataset.user_id(u), False), allowed)
            for d, u, allowed in pairs
        ]
        self.strong = [
            (build(dataset.doc_id(d), dataset.user_id(u), True), allowed) for d, u, allowed in pairs
        ]
        # Ids have a fixed width, so a miss request is a template with two slots.
        doc_mark, user_mark = dataset.doc_id(0), dataset.user_id(0)
        template = build(doc_mark, user_mark, False)
        head, rest = template.split(doc_mark.encode())
        middle, tail = rest.split(user_mark.encode())
        self._parts = (head, middle, tail)

    def miss(self, k: int) -> tuple[bytes, bool]:
        d, u = self._dataset.miss_pair(k, self._shape)
        head, middle, tail = self._parts
        ds, us = self._dataset.doc_id(d), self._dataset.user_id(u)
        return head + ds.encode() + middle + us.encode() + tail, self.reference.allowed(d, u)


class _Worker:
    """One job in one process: the calls in flight and what their answers were."""

    def __init__(self, job: Job, requests: _Requests) -> None:
        from authz_service.api.gen.authz.v1 import core_pb2

        self.job = job
        self.result = ProcessResult()
        self.latencies = array("f")
        self.send_lags = array("f")
        self.t_measure = job.start_at + job.warmup_s
        self.t_end = self.t_measure + job.duration_s
        self._allowed = core_pb2.DECISION_ALLOWED
        self._names = {v: k for k, v in core_pb2.Decision.items()}
        self._fixed = {"hot": requests.hot, "strong": requests.strong}.get(job.workload, [])
        self._requests = requests
        self._counter = job.miss_base

    def next_request(self, i: int) -> tuple[bytes, bool]:
        self._counter += 1
        if self._fixed:
            return self._fixed[(self._counter + i) % len(self._fixed)]
        return self._requests.miss(self._counter)

    async def caller(self, i: int, call: Any) -> None:
        while True:
            payload, expected = self.next_request(i)
            started = time.monotonic()
            if started >= self.t_end:
                return
            await self.one(call, payload, expected, started)

    async def scheduler(self, calls: list[Any]) -> None:
        """Open loop: one call every 1/rate s from the start, each in its own task."""
        interval, n = 1.0 / self.job.rate, 0
        tasks: set[asyncio.Task[None]] = set()
        start = self.job.start_at
        while True:
            due = start + n * interval
            if due >= self.t_end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            payload, expected = self.next_request(0)
            task = asyncio.create_task(self.one(calls[n % len(calls)], payload, expected, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.wait(tasks)

    async def one(self, call: Any, payload: bytes, expected: bool, started: float) -> None:
        import grpc

        clock, result, timeout = time.monotonic, self.result, self.job.timeout_s
        metadata = self.job.metadata or None
        response = None
        sent = clock()
        try:
            response = await call(payload, timeout=timeout, metadata=metadata)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a client-side failure is a failure too
            code = f"CLIENT_{type(exc).__name__}"
        done = clock()
        if done < self.t_measure:
            result.warmup[code] += 1
        elif done >= self.t_end:
            result.drain[code] += 1
        else:
            result.measured[code] += 1
            if response is not None:
                self.latencies.append((done - started) * 1e6)
                self.send_lags.append((sent - started) * 1e6)
        if response is not None and self.job.verify:
            if self.t_measure <= done < self.t_end:
                result.decisions[self._names.get(response.decision, "?")] += 1
            # Wrong answers count in every phase: none may pass unnoticed.
            if (response.decision == self._allowed) != expected:
                result.wrong += 1
                if self.t_measure <= done < self.t_end:
                    result.wrong_in_window += 1

    async def prime(self, call: Any) -> None:
        import grpc

        for payload, _expected in self._fixed:
            try:
                await call(payload, timeout=self.job.timeout_s, metadata=self.job.metadata or None)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            self.result.warmup[code] += 1

    async def cpu_sampler(self) -> None:
        await asyncio.sleep(max(0.0, self.t_measure - time.monotonic()))
        cpu0, w0 = time.process_time(), time.monotonic()
        await asyncio.sleep(max(0.0, self.t_end - time.monotonic()))
        self.result.cpu_s = time.process_time() - cpu0
        self.result.window_s = time.monotonic() - w0


async def _run_job(job: Job, requests: _Requests) -> ProcessResult:
    import grpc

    from authz_service.api.gen.authz.v1 import permissions_pb2

    worker = _Worker(job, requests)
    channels = [
        grpc.aio.insecure_channel(
            job.target,
            options=[("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)],
        )
        for _ in range(job.channels)
    ]
    try:
        await asyncio.gather(*(asyncio.wait_for(ch.channel_ready(), 15) for ch in channels))
        calls = [
            ch.unary_unary(
                CHECK_METHOD,
                request_serializer=None,  # requests are already bytes
                response_deserializer=permissions_pb2.CheckResponse.FromString,
                _registered_method=True,
            )
            for ch in channels
        ]
        if job.prime_only:
            await asyncio.gather(*(worker.prime(call) for call in calls))
            return worker.result
        now = time.monotonic()
        worker.result.late_s = max(0.0, now - job.start_at)
        await asyncio.sleep(max(0.0, job.start_at - now))
        if job.rate > 0:
            await asyncio.gather(worker.cpu_sampler(), worker.scheduler(calls))
        else:
            await asyncio.gather(
                worker.cpu_sampler(),
                *(worker.caller(i, calls[i % len(calls)]) for i in range(job.concurrency)),
            )
        worker.result.latencies_us = worker.latencies.tobytes()
        worker.result.send_lags_us = worker.send_lags.tobytes()
    except Exception as exc:
        worker.result.failure = f"{type(exc).__name__}: {exc}"
    finally:
        for ch in channels:
            await ch.close()
    return worker.result


def _child_main(conn: Connection, seed: int, loop_kind: str, bench_dir: str, scale: str) -> None:
    import sys

    sys.path.insert(0, bench_dir)
    sys.path.insert(0, str(Path(bench_dir).parent))
    requests = _Requests(seed, scale)
    # The data set and the prepared requests live as long as the process: keep the cycle
    # collector from walking them again and again (at 1M relationships its full
    # collections paused the generator for long enough to show in the measured tail).
    gc.collect()
    gc.freeze()

    async def serve_jobs() -> None:
        loop = asyncio.get_running_loop()
        conn.send("ready")
        while True:
            job = await loop.run_in_executor(None, conn.recv)
            if job is None:
                return
            conn.send(await _run_job(job, requests))

    if loop_kind == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve_jobs())
    else:
        asyncio.run(serve_jobs())


# ---------------------------------------------------------------------------------------
# Parent


class LoadGenerator:
    """`processes` persistent generator processes; `submit` a job, then `collect` it."""

    def __init__(
        self, processes: int, *, seed: int = 42, loop: str = "asyncio", scale: str = "default"
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        bench_dir = str(Path(__file__).resolve().parent)
        self._conns: list[Connection] = []
        self._procs = []
        self.loop = loop
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_child_main, args=(child, seed, loop, bench_dir, scale), daemon=True
            )
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)
        for conn in self._conns:
            if not conn.poll(120) or conn.recv() != "ready":
                raise RuntimeError("load generator process did not start")
        self._pending: Job | None = None

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def prime(
        self, target: str, *, channels: int, metadata: tuple[tuple[str, str], ...] = ()
    ) -> dict[str, int]:
        """Ask every hot pair once on each of `channels` connections per process, and wait.

        Each connection reaches one server worker, so with enough connections every
        worker's decision cache holds the hot set before a `hot` job starts, however
        slow cold checks are on a busy machine. Returns the statuses seen."""
        job = Job(
            target=target,
            workload="hot",
            concurrency=0,
            channels=channels,
            warmup_s=0.0,
            duration_s=0.0,
            start_at=time.monotonic(),
            miss_base=0,
            verify=False,
            metadata=metadata,
            prime_only=True,
        )
        statuses: Counter[str] = Counter()
        for conn in self._conns:
            conn.send(job)
        for conn in self._conns:
            if not conn.poll(300):
                raise RuntimeError("load generator process did not answer")
            part: ProcessResult = conn.recv()
            statuses += part.warmup
            if part.failure:
                statuses[f"CLIENT_{part.failure.split(':', 1)[0]}"] += 1
        return dict(statuses)

    def submit(
        self,
        target: str,
        workload: str,
        *,
        concurrency: int,
        channels: int,
        warmup_s: float,
        duration_s: float,
        miss_base: int,
        verify: bool,
        metadata: tuple[tuple[str, str], ...] = (),
        setup_s: float = 1.0,
        rate: float = 0.0,
    ) -> tuple[float, float]:
        """Start a job in every process; returns the window (start, end), monotonic."""
        if workload not in WORKLOADS:
            raise ValueError(f"workload {workload!r} not in {WORKLOADS}")
        start_at = time.monotonic() + setup_s
        for index, conn in enumerate(self._conns):
            job = Job(
                target=target,
                workload=workload,
                concurrency=concurrency,
                channels=channels,
                warmup_s=warmup_s,
                duration_s=duration_s,
                start_at=start_at,
                # 2^24 distinct pairs per process and job: far more than it can ask.
                miss_base=miss_base + index * (1 << 24),
                verify=verify,
                metadata=metadata,
                rate=rate,
            )
            conn.send(job)
            self._pending = job
        return start_at + warmup_s, start_at + warmup_s + duration_s

    def collect(self, timeout_s: float = 120.0) -> RunResult:
        job = self._pending
        assert job is not None, "collect() without submit()"
        parts: list[ProcessResult] = []
        for conn in self._conns:
            if not conn.poll(timeout_s + job.warmup_s + job.duration_s):
                raise RuntimeError("load generator process did not answer")
            parts.append(conn.recv())
        self._pending = None
        return _merge(job, parts)

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def _merge(job: Job, parts: list[ProcessResult]) -> RunResult:
    measured: Counter[str] = Counter()
    everything: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    latencies, send_lags = array("f"), array("f")
    wrong = wrong_in_window = 0
    cpu = 0.0
    for part in parts:
        measured += part.measured
        everything += part.measured + part.warmup + part.drain
        decisions += part.decisions
        wrong += part.wrong
        wrong_in_window += part.wrong_in_window
        cpu += part.cpu_s
        chunk = array("f")
        chunk.frombytes(part.latencies_us)
        latencies.extend(chunk)
        chunk = array("f")
        chunk.frombytes(part.send_lags_us)
        send_lags.extend(chunk)
    ordered = sorted(latencies)
    ok = measured.get("OK", 0)
    window = max((p.window_s for p in parts), default=0.0) or job.duration_s
    calls_in_window = sum(measured.values())
    return RunResult(
        job={
            "target": job.target,
            "workload": job.workload,
            "concurrency_per_process": job.concurrency,
            "channels_per_process": job.channels,
            "warmup_s": job.warmup_s,
            "duration_s": job.duration_s,
            "rate_per_process": job.rate,
        },
        processes=len(parts),
        ok=ok,
        ok_all_phases=everything.get("OK", 0),
        errors={k: v for k, v in sorted(everything.items()) if k != "OK"},
        errors_in_window={k: v for k, v in sorted(measured.items()) if k != "OK"},
        wrong=wrong,
        decisions=dict(sorted(decisions.items())),
        throughput=(ok - wrong_in_window) / window,
        p50_us=percentile(ordered, 0.50),
        p90_us=percentile(ordered, 0.90),
        p99_us=percentile(ordered, 0.99),
        max_us=ordered[-1] if ordered else float("nan"),
        send_lag_p99_us=percentile(sorted(send_lags), 0.99),
        client_cpu_us_per_call=cpu / calls_in_window * 1e6 if calls_in_window else float("nan"),
        max_late_s=max((p.late_s for p in parts), default=0.0),
        failures=[p.failure for p in parts if p.failure],
    )
