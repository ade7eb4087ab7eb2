"""The current schema, every past version on demand, and schema writes.

Compiling happens here once per version, never per request. Replay asks for old
versions by their digest; they are kept forever in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cachetools import LRUCache

from authz_service.errors import FailedPrecondition, NotFound, echo
from authz_service.schema import compile_schema, orphaned_relationships
from authz_service.schema.compiled import CompiledSchema
from authz_service.store.protocol import SchemaStore

__all__ = ["SchemaManager"]

log = logging.getLogger(__name__)


class SchemaManager:
    def __init__(self, store: SchemaStore, *, refresh_interval_s: float = 1.0) -> None:
        self._store = store
        self._current: CompiledSchema | None = None
        self._versions: LRUCache[str, CompiledSchema] = LRUCache(maxsize=32)
        self._refresh_interval = refresh_interval_s
        self._task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

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

    async def refresh(self) -> None:
        """Pick up a schema written by another replica."""
        record = await self._store.read_schema()
        if record is None:
            return
        if self._current is None or self._current.version != record.version:
            self._current = self._compiled(record.version, record.text)

    def _compiled(self, version: str, text: str) -> CompiledSchema:
        cached = self._versions.get(version)
        if cached is None:
            cached = compile_schema(text)
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
        return self._compiled(record.version, record.text)

    async def write(self, text: str, *, force: bool = False) -> CompiledSchema:
        """Compile, refuse changes that orphan stored relationships unless forced, store."""
        compiled = compile_schema(text)
        async with self._write_lock:
            if not force:
                # Internal rows (roles, bindings, status: types `__...`) are not schema
                # data; a binding on a type the schema drops simply grants nothing.
                kinds = {
                    k for k in await self._store.relationship_kinds() if not k[0].startswith("__")
                }
                problems = orphaned_relationships(compiled, kinds)
                if problems:
                    raise FailedPrecondition(
                        "schema change would orphan stored relationships (use force): "
                        + "; ".join(problems[:5])
                    )
            if self._current is None or self._current.version != compiled.version:
                await self._store.write_schema(compiled.version, compiled.text)
            self._versions[compiled.version] = compiled
            self._current = compiled
        return compiled

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
