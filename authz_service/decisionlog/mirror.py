"""Feeding a secondary sink (such as PostgreSQL) from the file log.

The files are the record of truth: an entry reaches a mirror only after it is fsync'd,
and a mirror never slows the writer down. When a mirror falls behind (it failed, or
its queue overflowed), it is brought up to date from the files by `catch_up`, so a
mirror outage loses nothing; it only delays what the mirror shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from authz_service.decisionlog.chain import LogEntry

__all__ = ["DecisionLogMirror", "MirrorFeed"]

log = logging.getLogger(__name__)


class DecisionLogMirror(Protocol):
    """A queryable copy of the log. Both methods must be idempotent: an entry can be
    offered more than once (by `write` and again by `catch_up`)."""

    async def write(self, entries: Sequence[LogEntry]) -> None:
        """Store entries that are already durable in the file log."""

    async def catch_up(self, root: Path) -> int:
        """Copy every entry under `root` the mirror lacks; return how many were copied."""


class MirrorFeed:
    """Owns the task that forwards fsync'd batches to one mirror."""

    def __init__(self, mirror: DecisionLogMirror, root: Path, *, max_batches: int = 64) -> None:
        self._mirror = mirror
        self._root = root
        self._queue: asyncio.Queue[Sequence[LogEntry] | None] = asyncio.Queue(max_batches)
        self._task: asyncio.Task[None] | None = None
        self._behind = False
        self.errors = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="decision-log-mirror")

    def feed(self, entries: Sequence[LogEntry]) -> None:
        try:
            self._queue.put_nowait(entries)
        except asyncio.QueueFull:
            # Dropping the in-memory copy is safe: the batch is on disk and catch_up
            # will read it back.
            if not self._behind:
                log.warning("decision log mirror is slow; it will catch up from the files")
            self._behind = True

    async def aclose(self) -> None:
        if self._task is None:
            return
        await self._queue.put(None)
        task, self._task = self._task, None
        await task

    async def _run(self) -> None:
        while (batch := await self._queue.get()) is not None:
            await self._deliver(batch)
        if self._behind:
            await self._deliver(())

    async def _deliver(self, batch: Sequence[LogEntry]) -> None:
        try:
            if self._behind:
                # Everything fed so far is on disk, so catching up covers `batch` too.
                # The flag is cleared first: an overflow during the catch-up sets it again.
                self._behind = False
                copied = await self._mirror.catch_up(self._root)
                log.info("decision log mirror caught up (%d entries copied)", copied)
            elif batch:
                await self._mirror.write(batch)
        except Exception:
            self.errors += 1
            self._behind = True
            log.warning("decision log mirror write failed; will catch up later", exc_info=True)
