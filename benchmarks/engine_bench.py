"""Engine micro-benchmark: warm, in process, over the memory store.

    python benchmarks/engine_bench.py [--runs 3000] [--seed 7] [--users 500]

Measures, on a seeded dataset, the wall time of one engine call (a fresh request each
time: no cross-request cache), reporting median and p99 over many runs:

- baseline: Check of a relation held directly (`doc#owner@user`), one store read;
- nested:   Check of `doc#view` reached through a 3-level nested-group path
            (doc -> group:top -> group:mid -> group:leaf -> user);
- list10:   ListPermissions over `doc`, which has 10 permissions;
- denied:   Check of `doc#view` for a user in no group (the whole graph is explored).

The baseline runs in the same process, interleaved with the others, so the ratios hold
on any machine. Store reads per call are counted too. The memory store scans every row on
each read, so over it the figures are mostly the store's; the same calls are therefore
also measured over an indexed in-memory reader (defined here, benchmark only), which
leaves mainly the engine's own cost. Wall time and CPU time of this process are both
reported: on a shared machine the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authz_service.engine import CheckItem, Decision, Engine, Snapshot
from authz_service.model import (
    EMPTY_CONTEXT,
    ObjectRef,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    Revision,
    SubjectRef,
    UpdateOp,
    parse_relationship,
)
from authz_service.schema import compile_schema
from authz_service.store.memory import MemoryStore
from authz_service.store.protocol import RelationshipReader

SCHEMA = """
definition user {}

definition group {
    relation member: user | group#member
}

definition doc {
    relation owner: user
    relation editor: user | group#member
    relation viewer: user | group#member
    relation commenter: user | group#member
    relation banned: user

    permission own = owner
    permission edit = editor + own
    permission view = viewer + edit
    permission comment = commenter + view
    permission share = edit & view
    permission delete = own - banned
    permission read = view - banned
    permission audit = own + editor
    permission export = read & comment
    permission admin = own & edit
}
"""
TENANT = "bench"


class CountingReader:
    def __init__(self, inner: RelationshipReader) -> None:
        self.inner = inner
        self.reads = 0

    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> list[Relationship]:
        self.reads += 1
        return await self.inner.read(tenant, revision, flt, limit=limit, after=after)


class IndexedReader:
    """Relationships indexed by (resource type, id, relation): what a real backend's
    index gives. Only the filters Check uses (resource ids given) are supported."""

    def __init__(self, rels: list[Relationship]) -> None:
        self.index: dict[tuple[str, str, str], list[Relationship]] = defaultdict(list)
        for rel in rels:
            self.index[(rel.resource.type, rel.resource.id, rel.relation)].append(rel)

    async def read(
        self,
        tenant: str,
        revision: Revision,
        flt: RelationshipFilter,
        *,
        limit: int | None = None,
        after: Relationship | None = None,
    ) -> list[Relationship]:
        assert flt.resource_type is not None
        assert flt.resource_ids is not None
        assert flt.relation is not None
        found: list[Relationship] = []
        for resource_id in flt.resource_ids:
            key = (flt.resource_type, resource_id, flt.relation)
            found.extend(r for r in self.index.get(key, ()) if flt.matches(r))
        return found


def dataset(seed: int, users: int) -> list[Relationship]:
    """Groups nested three deep; every doc viewed through a top group; noise around."""
    rng = random.Random(seed)
    rels: set[tuple[str, str, str, str]] = set()
    user_ids = [f"u{i}" for i in range(users)]
    leaves = [f"leaf{i}" for i in range(40)]
    mids = [f"mid{i}" for i in range(10)]
    tops = [f"top{i}" for i in range(3)]
    for leaf in leaves:
        for uid in rng.sample(user_ids, 12):
            rels.add(("group", leaf, "member", f"user:{uid}"))
    for i, leaf in enumerate(leaves):
        rels.add(("group", mids[i % len(mids)], "member", f"group:{leaf}#member"))
    for i, mid in enumerate(mids):
        rels.add(("group", tops[i % len(tops)], "member", f"group:{mid}#member"))
    for d in range(200):
        doc = f"d{d}"
        rels.add(("doc", doc, "owner", f"user:{rng.choice(user_ids)}"))
        rels.add(("doc", doc, "viewer", f"group:{rng.choice(tops)}#member"))
        rels.add(("doc", doc, "editor", f"user:{rng.choice(user_ids)}"))
        rels.add(("doc", doc, "commenter", f"group:{rng.choice(leaves)}#member"))
        rels.add(("doc", doc, "banned", f"user:{rng.choice(user_ids)}"))
    # the measured path: doc:target -> top0 -> mid0 -> leaf0 -> user:walker
    rels |= {
        ("doc", "target", "owner", "user:owner"),
        ("doc", "target", "viewer", "group:top0#member"),
        ("group", "top0", "member", "group:mid0#member"),
        ("group", "mid0", "member", "group:leaf0#member"),
        ("group", "leaf0", "member", "user:walker"),
    }
    return [parse_relationship(f"{t}:{i}#{r}@{s}") for t, i, r, s in sorted(rels)]


@dataclass
class Measured:
    name: str
    wall: list[float]
    cpu: list[float]
    reads: float

    def row(self, baseline: Measured) -> str:
        ordered = sorted(self.wall)
        median = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        cpu = statistics.median(self.cpu)
        ratio = cpu / statistics.median(baseline.cpu)
        return (
            f"| {self.name} | {median * 1e6:,.0f} | {p99 * 1e6:,.0f} | {cpu * 1e6:,.0f} | "
            f"{ratio:.1f}x | {self.reads:.0f} |"
        )


async def run(runs: int, seed: int, users: int, indexed: bool) -> list[Measured]:
    store = MemoryStore()
    rels = dataset(seed, users)
    revision = await store.write(TENANT, [RelationshipUpdate(UpdateOp.CREATE, r) for r in rels])
    reader = CountingReader(IndexedReader(rels) if indexed else store)
    engine = Engine(reader)
    snap = Snapshot(TENANT, revision, compile_schema(SCHEMA), datetime.now(UTC))
    doc = ObjectRef("doc", "target")
    walker = SubjectRef("user", "walker")
    owner = SubjectRef("user", "owner")
    nobody = SubjectRef("user", "nobody")

    async def baseline() -> object:
        return await engine.check(snap, CheckItem(doc, "owner", owner))

    async def nested() -> object:
        return await engine.check(snap, CheckItem(doc, "view", walker))

    async def list10() -> object:
        return await engine.list_permissions(snap, doc, walker, EMPTY_CONTEXT)

    async def denied() -> object:
        return await engine.check(snap, CheckItem(doc, "view", nobody))

    ops: dict[str, Callable[[], Awaitable[object]]] = {
        "baseline: direct relation check": baseline,
        "check, 3-level nested groups": nested,
        "ListPermissions, 10 permissions": list10,
        "check denied (explores all)": denied,
    }
    assert (await engine.check(snap, CheckItem(doc, "view", walker))).decision is Decision.ALLOWED
    assert len(await engine.list_permissions(snap, doc, walker, EMPTY_CONTEXT)) == 10
    wall: dict[str, list[float]] = {name: [] for name in ops}
    cpu: dict[str, list[float]] = {name: [] for name in ops}
    reads: dict[str, int] = dict.fromkeys(ops, 0)
    for _ in range(50):  # warm up
        for op in ops.values():
            await op()
    gc.collect()
    for _ in range(runs):
        for name, op in ops.items():  # interleaved: drift hits every series alike
            before = reader.reads
            start, start_cpu = time.perf_counter(), time.process_time()
            await op()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
            reads[name] += reader.reads - before
    return [Measured(name, wall[name], cpu[name], reads[name] / runs) for name in ops]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"engine_bench: runs={args.runs} seed={args.seed} users={args.users} "
        f"relationships={len(dataset(args.seed, args.users))} "
        f"python={sys.version.split()[0]} cores={os.cpu_count()} load={load:.1f}"
    )
    for indexed in (False, True):
        results = asyncio.run(run(args.runs, args.seed, args.users, indexed))
        print()
        print("over an indexed reader (engine cost)" if indexed else "over the memory store")
        print()
        print(
            "| operation | wall median µs | wall p99 µs | CPU median µs | CPU vs baseline "
            "| store reads/call |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for measured in results:
            print(measured.row(results[0]))


if __name__ == "__main__":
    main()
