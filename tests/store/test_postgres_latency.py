"""One read per engine subproblem: a single-resource read must stay one quick round trip.
The bound is loose (shared CI machines); the printed median is what the docs report."""

from __future__ import annotations

import statistics
import time

from authz_service.model import RelationshipFilter, parse_relationship
from authz_service.store.postgres import PostgresStore
from authz_service.store.postgres.importer import import_relationships


async def test_a_single_resource_read_is_fast(pg_store: PostgresStore) -> None:
    rows = [(i + 1, parse_relationship(f"doc:d{i // 5}#viewer@user:u{i}")) for i in range(20_000)]
    head = (await import_relationships(pg_store.db, "acme", rows)).revision
    for i in range(200):  # warm the pool and the prepared statement cache
        await pg_store.read("acme", head, RelationshipFilter("doc", (f"d{i}",), "viewer"))
    samples = []
    for i in range(2000):
        flt = RelationshipFilter("doc", (f"d{(i * 7919) % 4000}",), "viewer")
        started = time.perf_counter()
        found = await pg_store.read("acme", head, flt)
        samples.append(time.perf_counter() - started)
        assert len(found) == 5
    samples.sort()
    median = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99)]
    print(f"\nsingle-resource read: median {median * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us")
    assert median < 0.005
