"""A tenant's roles and bindings at one revision, held in memory between requests.

Every permission and relation the engine evaluates asks "which roles grant this?", so
that answer must cost nothing in the common case (no role grants it, or no binding uses
the roles that do). The index is built with two reads per (tenant, revision, schema
version) and kept in a small LRU; the key holds everything the data depends on, so an
entry is never stale and never seen by another tenant. A tenant with more binding rows
than `max_binding_rows` keeps only its roles here; its bindings are then read per request
(memoized by the request's reads).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from cachetools import LRUCache

from authz_service.engine import Snapshot
from authz_service.engine.dispatch import EvaluationState
from authz_service.model import Relationship, RelationshipFilter
from authz_service.schema.compiled import CompiledSchema
from authz_service.store.protocol import RelationshipReader
from authz_service.tenancy.encoding import (
    BINDING,
    ROLE,
    ROLE_OF,
    Binding,
    CustomRole,
    Pair,
    bindings_from,
    roles_from,
)

__all__ = ["TenantIndex", "TenantIndexes", "role_pairs"]

_CHUNK = 500


def role_pairs(schema: CompiledSchema, custom: Mapping[str, CustomRole], name: str) -> set[Pair]:
    """What role `name` grants: the schema's built-in role and the tenant's custom role of
    that name together (a custom role created before the schema declared the name keeps
    working and gains the built-in's items)."""
    pairs: set[Pair] = set()
    built_in = schema.roles.get(name)
    if built_in is not None:
        pairs.update(built_in.permissions)
    role = custom.get(name)
    if role is not None:
        pairs.update(role.permissions)
    return pairs


@dataclass(frozen=True, slots=True)
class TenantIndex:
    custom: Mapping[str, CustomRole]
    granting: Mapping[Pair, frozenset[str]]  # built-in and custom roles granting a pair
    bindings: Mapping[str, tuple[Binding, ...]] | None  # by role; None: read per request

    @classmethod
    def build(
        cls,
        schema: CompiledSchema,
        custom: Mapping[str, CustomRole],
        bindings: Mapping[str, Binding] | None,
    ) -> TenantIndex:
        granting: dict[Pair, set[str]] = defaultdict(set)
        for name in {*schema.roles, *custom}:
            for pair in role_pairs(schema, custom, name):
                granting[pair].add(name)
        by_role: dict[str, list[Binding]] | None = None
        if bindings is not None:
            by_role = defaultdict(list)
            for binding in sorted(bindings.values(), key=lambda b: b.binding_id):
                by_role[binding.role].append(binding)
        return cls(
            custom,
            {pair: frozenset(names) for pair, names in granting.items()},
            None if by_role is None else {r: tuple(bs) for r, bs in by_role.items()},
        )

    def with_role(self, schema: CompiledSchema, role: CustomRole) -> TenantIndex:
        """This index as it would be with the custom role `role` created or replaced,
        for judging a change before it is written."""
        bindings = None
        if self.bindings is not None:
            bindings = {b.binding_id: b for bs in self.bindings.values() for b in bs}
        return TenantIndex.build(schema, {**self.custom, role.name: role}, bindings)

    def roles_granting(self, pair: Pair) -> frozenset[str]:
        return self.granting.get(pair, frozenset())

    def may_bind(self, roles: frozenset[str]) -> bool:
        """False when it is known here that no binding uses any of `roles`."""
        if self.bindings is None:
            return bool(roles)
        return any(role in self.bindings for role in roles)

    async def bindings_of(self, state: EvaluationState, roles: frozenset[str]) -> list[Binding]:
        """Bindings of `roles`, ordered by id, at the request's snapshot."""
        if not roles:
            return []
        if self.bindings is not None:
            found = [b for role in roles for b in self.bindings.get(role, ())]
            return sorted(found, key=lambda b: b.binding_id)
        read = await state.reads.read(
            RelationshipFilter(BINDING, None, ROLE_OF, ROLE, tuple(sorted(roles)), "")
        )
        ids = sorted({rel.resource.id for rel in read.live})
        rels: list[Relationship] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = tuple(ids[start : start + _CHUNK])
            rels.extend((await state.reads.read(RelationshipFilter(BINDING, chunk))).live)
        return sorted(bindings_from(rels).values(), key=lambda b: b.binding_id)


class TenantIndexes:
    """The LRU of `TenantIndex` by (tenant, revision, schema version). Concurrent misses
    on one key share one load."""

    def __init__(
        self, reader: RelationshipReader, *, size: int = 64, max_binding_rows: int = 4000
    ) -> None:
        self._reader = reader
        self._cache: LRUCache[tuple[str, int, str], TenantIndex] = LRUCache(maxsize=size)
        self._loading: dict[tuple[str, int, str], asyncio.Future[TenantIndex]] = {}
        self._max_rows = max_binding_rows
        self.loads = 0  # for tests and metrics: how many times an index was read

    async def get(self, snap: Snapshot) -> TenantIndex:
        key = (snap.tenant, snap.revision, snap.schema.version)
        found = self._cache.get(key)
        if found is not None:
            return found
        pending = self._loading.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The loader was cancelled, not this caller: load here instead.
        future: asyncio.Future[TenantIndex] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            index = await self._load(snap)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(index)
            self._cache[key] = index
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        return index

    async def _load(self, snap: Snapshot) -> TenantIndex:
        self.loads += 1
        tenant, revision = snap.tenant, snap.revision
        custom = roles_from(await self._reader.read(tenant, revision, RelationshipFilter(ROLE)))
        rows = await self._reader.read(
            tenant, revision, RelationshipFilter(BINDING), limit=self._max_rows + 1
        )
        bindings = bindings_from(rows) if len(rows) <= self._max_rows else None
        return TenantIndex.build(snap.schema, custom, bindings)
