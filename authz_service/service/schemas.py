"""The current schema, every past version on demand, and schema writes.

Compiling happens here once per version, never per request. Replay asks for old
versions by their digest; they are kept forever in the store.

Every stored schema write has a sequence number (`SchemaRecord.seq`). This process
knows the one it uses, and never goes back to an older one. A read that must see a
schema at least as new as some seq (from a token, or from the database in the round trip
of a fully consistent read) calls `at_least(seq)`, which reloads first if needed. Other
reads use what the background refresh (every `refresh_interval_s`) last loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from cachetools import LRUCache

from authz_service.errors import FailedPrecondition, InvalidArgument, NotFound, echo
from authz_service.model import Consistency, Revision
from authz_service.revisions import RevisionResolver
from authz_service.schema import compile_schema, orphaned_kinds, orphaned_relationships
from authz_service.schema.checker import DEFAULT_MAX_CAVEAT_BYTES, DEFAULT_MAX_CAVEAT_COST
from authz_service.schema.compiled import CompiledSchema
from authz_service.store.protocol import SchemaStore

__all__ = ["DEFAULT_MAX_SCHEMA_BYTES", "SchemaManager", "SchemaWrite"]

DEFAULT_MAX_SCHEMA_BYTES = 262_144

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SchemaWrite:
    """What WriteSchema did: the schema now current, the seq a reader must reach to use
    it (or a newer one), and what it orphaned (only a forced write orphans anything)."""

    schema: CompiledSchema
    seq: int
    orphaned: tuple[str, ...]


class SchemaManager:
    def __init__(
        self,
        store: SchemaStore,
        *,
        refresh_interval_s: float = 1.0,
        max_schema_bytes: int = DEFAULT_MAX_SCHEMA_BYTES,
        max_caveat_bytes: int = DEFAULT_MAX_CAVEAT_BYTES,
        max_caveat_cost: int = DEFAULT_MAX_CAVEAT_COST,
    ) -> None:
        """The byte limits and the expression depth limit apply to schemas written through
        `write`; a schema already stored is always loaded, whatever the limits are now."""
        self._store = store
        self._max_schema_bytes = max_schema_bytes
        self._max_caveat_bytes = max_caveat_bytes
        self._max_caveat_cost = max_caveat_cost
        self.compiling = 0  # schema writes being compiled right now
        self._current: CompiledSchema | None = None
        self._seq = 0  # the `SchemaRecord.seq` of `_current`
        self._versions: LRUCache[str, CompiledSchema] = LRUCache(maxsize=32)
        self._created: LRUCache[str, datetime] = LRUCache(maxsize=256)
        self._refresh_interval = refresh_interval_s
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._reload_lock = asyncio.Lock()

    @property
    def current(self) -> CompiledSchema:
        if self._current is None:
            raise FailedPrecondition("no schema has been written yet: call WriteSchema first")
        return self._current

    async def require(self) -> CompiledSchema:
        """The current schema, asking the store once if this replica has none yet (a
        schema written through another replica a moment ago)."""
        if self._current is None:
            await self.refresh()
        return self.current

    @property
    def loaded(self) -> CompiledSchema | None:
        return self._current

    @property
    def seq(self) -> int:
        """The sequence number of the schema in use (0 before the first)."""
        return self._seq

    async def at_least(self, seq: int) -> CompiledSchema:
        """The current schema, reloaded from the store first if this process's is older
        than `seq`. FailedPrecondition if the store has no schema that new (a token from
        another database)."""
        if self._seq < seq or self._current is None:
            async with self._reload_lock:  # concurrent readers share one reload
                if self._seq < seq or self._current is None:
                    await self.refresh()
            if self._seq < seq:
                raise FailedPrecondition(
                    f"the token's schema (write {seq}) is newer than the newest stored "
                    f"schema (write {self._seq})"
                )
        return self.current

    async def for_read(
        self, resolver: RevisionResolver, tenant: str, consistency: Consistency
    ) -> tuple[CompiledSchema, Revision]:
        """The schema and revision a read decides with: never a schema older than the
        caller's token, or than the database's at a fully consistent read."""
        revision, schema_seq = await resolver.resolve_read(tenant, consistency)
        return await self.at_least(schema_seq), revision

    async def refresh(self) -> None:
        """Pick up a schema written by another replica."""
        record = await self._store.read_schema()
        if record is not None:
            self._use(record.seq, await self._compiled(record.version, record.text))

    def _use(self, seq: int, compiled: CompiledSchema) -> None:
        # Only forward: a slow refresh that read before a newer write must not undo it.
        if seq > self._seq:
            self._seq, self._current = seq, compiled

    async def _compiled(self, version: str, text: str) -> CompiledSchema:
        cached = self._versions.get(version)
        if cached is None:
            # A stored schema passed the limits and checks of its day; it is read back
            # even if it would not pass today's.
            cached = await asyncio.to_thread(
                compile_schema, text, max_expression_depth=None, allow_undefined_functions=True
            )
            self._versions[version] = cached
        return cached

    async def version(self, version: str) -> CompiledSchema:
        """A schema version by digest (replay of old decisions)."""
        cached = self._versions.get(version)
        if cached is not None:
            return cached
        record = await self._store.read_schema(version)
        if record is None:
            raise NotFound(f"schema version `{echo(version)}` does not exist")
        return await self._compiled(record.version, record.text)

    async def created(self, version: str) -> datetime | None:
        """When `version` was first written (None if the store has no such version). It
        never changes, so it is asked of the store once per version."""
        found = self._created.get(version)
        if found is None:
            record = await self._store.read_schema(version)
            if record is None:
                return None
            found = self._created[version] = record.created_at
        return found

    async def write(self, text: str, *, force: bool = False) -> SchemaWrite:
        """Compile, refuse changes that orphan stored relationships unless forced, store."""
        size = len(text.encode())
        if size > self._max_schema_bytes:
            raise InvalidArgument(
                f"schema is {size} bytes, over the limit AUTHZ_MAX_SCHEMA_BYTES "
                f"= {self._max_schema_bytes}",
                field="schema",
                value=size,
            )
        # Compiling is pure Python but for CEL (bounded by the caveat limit): in a thread
        # the interpreter still switches to the event loop every few milliseconds, so a
        # large schema slows other calls down instead of stopping them.
        self.compiling += 1
        try:
            compiled = await asyncio.to_thread(
                compile_schema,
                text,
                max_caveat_bytes=self._max_caveat_bytes,
                max_caveat_cost=self._max_caveat_cost,
            )
        finally:
            self.compiling -= 1
        async with self._write_lock:
            # Internal rows (roles, bindings, status: types `__...`) are not schema data;
            # a binding on a type the schema drops simply grants nothing.
            kinds = {
                k
                for k in await self._store.relationship_kinds()
                if not k.resource_type.startswith("__")
            }
            if not force:
                problems = orphaned_relationships(compiled, kinds)
                problems += _orphaned_grants(compiled, await self._store.role_grants())
                if problems:
                    raise FailedPrecondition(
                        "schema change would orphan stored relationships or role grants "
                        "(use force): " + "; ".join(problems[:5])
                    )
            # Compare with the store's current schema, not this process's: another
            # replica may have written a newer one since the last refresh.
            await self.refresh()
            if self._current is None or self._current.version != compiled.version:
                record = await self._store.write_schema(compiled.version, compiled.text)
                self._versions[compiled.version] = compiled
                self._use(record.seq, compiled)
        return SchemaWrite(compiled, self._seq, tuple(orphaned_kinds(compiled, kinds)))

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_loop(), name="schema-refresh")

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except Exception:  # the loop must outlive a database outage
                log.warning("schema refresh failed; keeping version in use", exc_info=True)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _orphaned_grants(schema: CompiledSchema, grants: dict[str, tuple[str, str]]) -> list[str]:
    """Custom-role grants (`type.name`) the new schema no longer declares: such a role
    would silently grant nothing there (schema.proto: refused unless forced)."""
    problems = []
    for pair, (tenant, role) in sorted(grants.items()):
        type_name, _, member = pair.partition(".")
        if schema.member(type_name, member) is None:
            problems.append(f"role `{role}` of tenant `{tenant}` grants `{pair}`")
    return problems
