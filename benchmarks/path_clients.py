"""The decision-path benchmark's clients for everything except single Checks (those run in
benchmarks/loadgen.py): CheckBulk, ListPermissions, LookupSubjects, LookupResources, a
steady writer, and the servers' decision counters. Every answer is compared with the
data set's reference evaluator and every status is counted; a call's latency is its wall
time, a stream's the time to its last message.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import time
import urllib.request
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dataset
import grpc

from authz_service.api.gen.authz.v1 import (
    core_pb2,
    permissions_pb2,
    permissions_pb2_grpc,
    relationships_pb2,
    relationships_pb2_grpc,
)

__all__ = [
    "Inputs",
    "Tally",
    "bulk_hot_parallel",
    "decisions_by_cache",
    "lookup_resources",
    "lookup_subjects",
    "metric",
    "run_closed",
    "writer",
]

LATEST = core_pb2.Consistency(minimize_latency=True)
ALLOWED = core_pb2.DECISION_ALLOWED


@dataclass
class Tally:
    """Statuses of every call, wrong answers, and latencies of the OK calls (ms)."""

    statuses: Counter[str] = field(default_factory=Counter)
    wrong: int = 0
    decisions: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            return (
                ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else None
            )

        calls = self.statuses.get("OK", 0)
        return {
            "statuses": dict(self.statuses),
            "wrong": self.wrong,
            "calls_per_s": calls / self.elapsed_s if self.elapsed_s else 0.0,
            "decisions_per_s": self.decisions / self.elapsed_s if self.elapsed_s else 0.0,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
        }


def obj(kind: str, object_id: str) -> core_pb2.ObjectReference:
    return core_pb2.ObjectReference(object_type=kind, object_id=object_id)


def user(u: int) -> core_pb2.SubjectReference:
    return core_pb2.SubjectReference(object=obj("user", dataset.user_id(u)))


@dataclass(frozen=True)
class Inputs:
    """What the operations draw from: the reference, and 100 fixed hot pairs."""

    ref: Any
    hot: list[tuple[int, int]]
    hot_allowed: list[bool]  # the reference's answer for each hot pair, in order

    @classmethod
    def of(cls, data: dataset.Dataset) -> Inputs:
        hot = dataset.hot_pairs(data, count=100)
        return cls(data.reference(), [(d, u) for d, u, _ in hot], [a for _, _, a in hot])


async def _bulk(stub: Any, inputs: Inputs, rng: random.Random, meta: Any, tally: Tally) -> None:
    """100 random pairs: the decision cache cannot answer them."""
    shape = inputs.ref.shape
    pairs = [(rng.randrange(shape.documents), rng.randrange(shape.users)) for _ in range(100)]
    await _bulk_of(stub, inputs.ref, pairs, meta, tally)


def _bulk_request(pairs: list[tuple[int, int]]) -> permissions_pb2.CheckBulkRequest:
    return permissions_pb2.CheckBulkRequest(
        tenant=dataset.TENANT,
        consistency=LATEST,
        items=[
            permissions_pb2.CheckBulkRequestItem(
                resource=obj("document", dataset.doc_id(d)), permission="view", subject=user(u)
            )
            for d, u in pairs
        ],
    )


async def _bulk_of(
    stub: Any, ref: Any, pairs: list[tuple[int, int]], meta: Any, tally: Tally
) -> None:
    reply = await stub.CheckBulk(_bulk_request(pairs), timeout=30, metadata=meta)
    for (d, u), item in zip(pairs, reply.items, strict=True):
        if item.WhichOneof("outcome") != "result":
            tally.statuses[f"item error {item.error.code}"] += 1
            continue
        tally.decisions += 1
        tally.wrong += (item.result.decision == ALLOWED) != ref.allowed(d, u)


async def _bulk_hot_closed(
    target: str,
    request: bytes,
    expected: list[bool],
    meta: Any,
    concurrency: int,
    start: float,
    end: float,
) -> Tally:
    """The same CheckBulk back to back from `start` to `end` (wall clock, shared by the
    processes), every item's answer compared with `expected`. The request is serialized
    once and the answers compared as a list: at a hundred items, building and reading
    messages per call in Python cost the generator more CPU than the server spent."""
    tally, warm = Tally(), Tally()
    want = [ALLOWED if a else core_pb2.DECISION_DENIED for a in expected]
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/authz.v1.PermissionsService/CheckBulk",
            request_serializer=None,  # bytes as they are
            response_deserializer=permissions_pb2.CheckBulkResponse.FromString,
        )

        async def caller() -> None:
            while (now := time.time()) < end:
                counted = warm if now < start else tally
                try:
                    reply = await call(request, timeout=30, metadata=meta)
                except grpc.aio.AioRpcError as exc:
                    counted.statuses[exc.code().name] += 1
                    continue
                counted.statuses["OK"] += 1
                counted.latencies_ms.append((time.time() - now) * 1000)
                got = [item.result.decision for item in reply.items]
                if got == want:
                    counted.decisions += len(got)
                    continue
                for item, wanted in zip(reply.items, want, strict=True):
                    if item.WhichOneof("outcome") != "result":
                        counted.statuses[f"item error {item.error.code}"] += 1
                        continue
                    counted.decisions += 1
                    counted.wrong += item.result.decision != wanted

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    tally.elapsed_s = end - start
    tally.statuses.update({f"{k} (warm-up)": v for k, v in warm.statuses.items() if k != "OK"})
    tally.wrong += warm.wrong
    return tally


def _bulk_hot_process(args: tuple[Any, ...]) -> Tally:
    return asyncio.run(_bulk_hot_closed(*args))


def bulk_hot_parallel(
    target: str,
    inputs: Inputs,
    meta: Any,
    *,
    processes: int,
    concurrency: int,
    duration_s: float,
) -> Tally:
    """The hot CheckBulk from `processes` generator processes (spawned: gRPC does not
    survive a fork) with `concurrency` calls in flight each, after a 1 s warm-up; their
    tallies summed."""
    request = _bulk_request(inputs.hot).SerializeToString()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        # Processes take a while to spawn: the window opens once all could have started.
        start = time.time() + 3.0
        jobs = [
            (target, request, inputs.hot_allowed, meta, concurrency, start, start + duration_s)
            for _ in range(processes)
        ]
        tallies = list(pool.map(_bulk_hot_process, jobs))
    total = Tally(elapsed_s=duration_s)
    for part in tallies:
        total.statuses.update(part.statuses)
        total.wrong += part.wrong
        total.decisions += part.decisions
        total.latencies_ms.extend(part.latencies_ms)
    return total


async def _list(stub: Any, inputs: Inputs, rng: random.Random, meta: Any, tally: Tally) -> None:
    ref = inputs.ref
    d, u = rng.randrange(ref.shape.documents), rng.randrange(ref.shape.users)
    request = permissions_pb2.ListPermissionsRequest(
        tenant=dataset.TENANT,
        resource=obj("document", dataset.doc_id(d)),
        subject=user(u),
        consistency=LATEST,
    )
    reply = await stub.ListPermissions(request, timeout=30, metadata=meta)
    got = {p.permission: p.decision == ALLOWED for p in reply.permissions}
    tally.decisions += len(got)
    tally.wrong += got != ref.permissions(d, u)


OPERATIONS = {"bulk": _bulk, "list": _list}


async def run_closed(
    target: str, operation: str, inputs: Inputs, meta: Any, *, concurrency: int, duration_s: float
) -> Tally:
    """`concurrency` callers of `operation` back to back for `duration_s` (after a 1 s
    warm-up that is not counted)."""
    work, tally = OPERATIONS[operation], Tally()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = permissions_pb2_grpc.PermissionsServiceStub(channel)
        warm = Tally()
        start = time.monotonic() + 1.0
        end = start + duration_s

        async def caller(seed: int) -> None:
            rng = random.Random(seed)
            while (now := time.monotonic()) < end:
                target_tally = warm if now < start else tally
                try:
                    await work(stub, inputs, rng, meta, target_tally)
                    target_tally.statuses["OK"] += 1
                    target_tally.latencies_ms.append((time.monotonic() - now) * 1000)
                except grpc.aio.AioRpcError as exc:
                    target_tally.statuses[exc.code().name] += 1

        await asyncio.gather(*(caller(i) for i in range(concurrency)))
    tally.elapsed_s = duration_s
    tally.statuses.update({f"{k} (warm-up)": v for k, v in warm.statuses.items() if k != "OK"})
    tally.wrong += warm.wrong
    return tally


async def lookup_subjects(target: str, meta: Any, group: str, expected: int) -> dict[str, Any]:
    """Stream every member of `group:<group>#member` once; its time and count."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = permissions_pb2_grpc.PermissionsServiceStub(channel)
        request = permissions_pb2.LookupSubjectsRequest(
            tenant=dataset.TENANT,
            resource=obj("group", group),
            permission="member",
            subject_type="user",
            consistency=LATEST,
        )
        started, seen, status = time.monotonic(), 0, "OK"
        try:
            async for reply in stub.LookupSubjects(request, timeout=120, metadata=meta):
                seen += reply.decision == ALLOWED
        except grpc.aio.AioRpcError as exc:
            status = exc.code().name
        return {
            "status": status,
            "streamed": seen,
            "expected": expected,
            "seconds": time.monotonic() - started,
        }


async def lookup_resources(
    target: str, meta: Any, users: list[int], expected: dict[int, set[int]] | None
) -> Tally:
    """LookupResources(document, view) for each user in turn, streamed whole."""
    tally = Tally()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = permissions_pb2_grpc.PermissionsServiceStub(channel)
        began = time.monotonic()
        for u in users:
            request = permissions_pb2.LookupResourcesRequest(
                tenant=dataset.TENANT,
                resource_type="document",
                permission="view",
                subject=user(u),
                consistency=LATEST,
            )
            started, found = time.monotonic(), set()
            try:
                async for reply in stub.LookupResources(request, timeout=120, metadata=meta):
                    if reply.decision == ALLOWED:
                        found.add(int(reply.resource_id[1:]))
                tally.statuses["OK"] += 1
                tally.latencies_ms.append((time.monotonic() - started) * 1000)
                tally.decisions += len(found)
                if expected is not None and u in expected:
                    tally.wrong += found != expected[u]
            except grpc.aio.AioRpcError as exc:
                tally.statuses[exc.code().name] += 1
        tally.elapsed_s = time.monotonic() - began
    return tally


async def writer(target: str, meta: Any, per_second: float, stop: asyncio.Event) -> Counter[str]:
    """Touch a viewer on a fresh document every 1/per_second s: a steady trickle of
    writes to the benchmark's tenant, of documents and users the data set does not have
    (so no reference answer changes)."""
    statuses: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = relationships_pb2_grpc.RelationshipsServiceStub(channel)
        n, start = 0, time.monotonic()
        while not stop.is_set():
            rel = core_pb2.Relationship(
                resource=obj("document", f"w{n:06d}"),
                relation="viewer",
                subject=core_pb2.SubjectReference(object=obj("user", f"x{n % 100:04d}")),
            )
            update = relationships_pb2.RelationshipUpdate(
                operation=relationships_pb2.RelationshipUpdate.OPERATION_TOUCH, relationship=rel
            )
            request = relationships_pb2.WriteRelationshipsRequest(
                tenant=dataset.TENANT, updates=[update]
            )
            try:
                await stub.WriteRelationships(request, timeout=5, metadata=meta)
                statuses["OK"] += 1
            except grpc.aio.AioRpcError as exc:
                statuses[exc.code().name] += 1
            n += 1
            delay = start + n / per_second - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
    return statuses


def decisions_by_cache(metrics_ports: list[int]) -> tuple[float, float]:
    """(decisions answered by the cache, decisions computed), summed over workers, from
    `authz_decisions_total{cache_hit=...}` on each worker's /metrics."""
    hits = misses = 0.0
    for port in metrics_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        for line in text.splitlines():
            if line.startswith("authz_decisions_total{"):
                value = float(line.rsplit(" ", 1)[1])
                if 'cache_hit="true"' in line:
                    hits += value
                else:
                    misses += value
    return hits, misses


def check_latency_buckets(port: int) -> dict[float, float]:
    """One worker's cumulative counts of its Check handler's latency histogram
    (`grpc_server_handling_seconds`, from the handler's start to its response: the
    server's own time, without the time a call waits in gRPC before its handler runs)."""
    found: dict[float, float] = {}
    prefix = "grpc_server_handling_seconds_bucket{"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(prefix) and 'grpc_method="Check"' in line:
                labels, value = line.rsplit(" ", 1)
                bound = labels.split('le="', 1)[1].split('"', 1)[0]
                found[float(bound)] = float(value)
    return found


def handler_quantile(
    before: list[dict[float, float]], after: list[dict[float, float]], q: float
) -> float | None:
    """The upper bound (ms) of the histogram bucket holding quantile `q` of the Checks
    handled between two scrapes of every worker (None when there were none)."""
    counts: Counter[float] = Counter()
    for old, new in zip(before, after, strict=True):
        for bound, value in new.items():
            counts[bound] += value - old.get(bound, 0.0)
    total = counts.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for bound in sorted(counts):
        if counts[bound] >= q * total:
            return bound * 1000
    return None


def metric(port: int, name: str) -> float:
    """One unlabelled metric of one worker (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0
