"""The dispatcher seam (a cross-request cache can wrap it) and grant sources."""

from __future__ import annotations

from dataclasses import dataclass, field

from authz_service.engine import (
    FALSE,
    TRUE,
    Decision,
    Dispatcher,
    Subproblem,
    SubResult,
)
from authz_service.model import FrozenContext, ObjectRef, SubjectRef

from .helpers import setup

SCHEMA = """
definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation viewer: user
    permission view = viewer
}
definition doc {
    relation folder: folder
    relation viewer: user | group#member
    permission view = viewer + folder->view
}
"""


@dataclass
class CountingCache:
    """A toy cross-request cache, keyed as `dispatch.py` says a cache must be."""

    inner: Dispatcher
    stored: dict[tuple[object, ...], SubResult] = field(default_factory=dict)
    misses: int = 0

    async def dispatch(self, req: Subproblem) -> SubResult:
        found = self.stored.get(req.cache_key)
        if found is not None:
            return found
        self.misses += 1
        result = await self.inner.dispatch(req)
        if result.cacheable:
            self.stored[req.cache_key] = result
        return result


async def test_wrapper_sees_every_subproblem_and_can_answer_across_requests() -> None:
    caches: list[CountingCache] = []

    def wrap(inner: Dispatcher) -> Dispatcher:
        caches.append(CountingCache(inner))
        return caches[-1]

    s = await setup(
        SCHEMA,
        ["doc:d#viewer@group:g#member", "group:g#member@group:g#member", "group:g#member@user:ann"],
        wrapper=wrap,
    )
    cache = caches[0]
    assert await s.decision("doc:d#view@user:ann") is Decision.ALLOWED
    first = cache.misses
    assert first >= 3  # doc view, doc viewer, group member
    assert await s.decision("doc:d#view@user:ann") is Decision.ALLOWED
    assert cache.misses == first  # answered from the cache
    assert await s.decision("doc:d#view@user:bob") is Decision.DENIED
    # nothing that leaned on a cycle cut was stored
    assert all(r.cycle_index is None for r in cache.stored.values())
    # explanations bypass the wrapper
    misses = cache.misses
    result = await s.check("doc:d#view@user:ann", explain=True)
    assert result.explanation is not None
    assert cache.misses == misses


async def test_cache_key_separates_tenant_revision_schema_and_context() -> None:
    s = await setup(SCHEMA)
    seen: list[tuple[object, ...]] = []

    @dataclass
    class Spy:
        inner: Dispatcher

        async def dispatch(self, req: Subproblem) -> SubResult:
            seen.append(req.cache_key)
            return await self.inner.dispatch(req)

    s = await setup(SCHEMA, wrapper=Spy)
    await s.check("doc:d#view@user:ann", {"x": 1})
    tenant, revision, version, *subproblem, context = seen[0]
    assert (tenant, revision, version) == (s.snap.tenant, s.snap.revision, s.snap.schema.version)
    assert subproblem == ["doc", "d", "view", "user", "ann", ""]
    assert context == FrozenContext({"x": 1}).canonical


@dataclass
class FolderGrant:
    """A toy grant source: `view` on `folder:shared` for `user:gwen`."""

    calls: int = 0

    async def grants(self, req: Subproblem) -> SubResult:
        self.calls += 1
        granted = (req.resource, req.relation, req.subject) == (
            ObjectRef("folder", "shared"),
            "view",
            SubjectRef("user", "gwen"),
        )
        return SubResult(TRUE if granted else FALSE)


async def test_grant_source_flows_through_arrows() -> None:
    source = FolderGrant()
    s = await setup(SCHEMA, ["doc:d#folder@folder:shared"], grant_sources=[source])
    assert await s.decision("doc:d#view@user:gwen") is Decision.ALLOWED
    assert await s.decision("doc:d#view@user:hal") is Decision.DENIED
    assert await s.decision("doc:other#view@user:gwen") is Decision.DENIED
    assert source.calls > 0
    result = await s.check("doc:d#view@user:gwen", explain=True)
    assert result.explanation is not None
    kinds = []
    stack = [result.explanation]
    while stack:
        node = stack.pop()
        kinds.append(node.kind)
        stack.extend(node.children)
    assert "grant" in kinds
