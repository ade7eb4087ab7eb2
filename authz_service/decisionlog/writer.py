"""The decision log writer: one owner task that chains, batches, writes and checkpoints.

`append` links the record into its tenant's chain synchronously (no await between
reading the head and queueing the entry), so concurrent appends are chained in the
order they were accepted. The owner task takes whatever is queued, writes it with one
write+fsync per stream in a worker thread, and only then resolves durable appends:
records that arrive during an fsync ride along with the next one (group commit). Under
concurrent load a durable batch also waits up to `commit_window` for more records, so
that one fsync serves many calls.

On a failed write or fsync the writer stops for good: after a failed fsync the kernel
may already have dropped the dirty pages, so a retried fsync can report success for
data that is gone. Every waiting and later `append` raises `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authz_service.decisionlog.chain import ChainHead, LogEntry
from authz_service.decisionlog.checkpoint import Checkpoint, CheckpointEvent, load_private_key
from authz_service.decisionlog.config import DecisionLogConfig, LogMode, OverflowPolicy
from authz_service.decisionlog.mirror import DecisionLogMirror, MirrorFeed
from authz_service.decisionlog.record import DecisionRecord
from authz_service.decisionlog.redact import Redactor
from authz_service.decisionlog.sink_file import FileSink
from authz_service.decisionlog.stats import Counters, WriterStats
from authz_service.errors import FailedPrecondition, Unavailable

__all__ = ["DecisionLogWriter", "WriterStats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    entry: LogEntry
    done: asyncio.Future[LogEntry] | None  # durable mode: resolved after the fsync
    queued_at: float


class DecisionLogWriter:
    """Owns the file sink of one root directory. Use `async with` or `start`/`aclose`."""

    def __init__(self, config: DecisionLogConfig, *, mirror: DecisionLogMirror | None = None):
        self._config = config
        self._sink = FileSink(
            config.root,
            max_segment_bytes=config.max_segment_bytes,
            max_segment_age=config.max_segment_age,
        )
        self._redactor = Redactor(config.redact_paths)
        self._mirror = MirrorFeed(mirror, config.root) if mirror is not None else None
        self._key: Ed25519PrivateKey | None = None
        self._heads: dict[str, ChainHead] = {}  # including queued entries
        self._durable: dict[str, ChainHead] = {}  # fsync'd entries only: what checkpoints sign
        self._signed: dict[str, ChainHead] | None = None  # what the last checkpoint named
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: Unavailable | None = None
        self._next_checkpoint = 0.0
        self._counters = Counters()
        self._busy = False  # records arrived while the last batch was being written

    async def start(self) -> None:
        if self._task is not None or self._closing:
            raise FailedPrecondition("decision log writer was already started")
        if self._config.signing_key_path is not None:
            self._key = await asyncio.to_thread(load_private_key, self._config.signing_key_path)
        else:
            log.warning("decision log has no signing key: no checkpoints, a cut tail goes unseen")
        heads = await asyncio.to_thread(self._sink.open)
        self._heads, self._durable = dict(heads), dict(heads)
        # Signed before any append, so that records after an earlier `close` checkpoint
        # belong to this start; it also signs a tail left unsigned by a crash.
        try:
            await self._checkpoint(CheckpointEvent.START)
        except BaseException:
            await asyncio.to_thread(self._sink.close)
            raise
        self._next_checkpoint = asyncio.get_running_loop().time() + self._config.checkpoint_interval
        if self._mirror is not None:
            self._mirror.start()
        self._task = asyncio.create_task(self._run(), name="decision-log-writer")

    async def append(self, record: DecisionRecord) -> LogEntry:
        """Chain `record` into its tenant's stream; return the stored entry.

        Durable mode returns once the entry is on disk and fsync'd. Buffered mode returns
        at once. Raises `Unavailable` when the writer is closed or failed, or when the
        queue is full and `on_full` is `error`.
        """
        self._check_open()
        while len(self._pending) >= self._config.max_queue:
            if self._config.on_full is OverflowPolicy.ERROR:
                self._counters.rejected += 1
                raise Unavailable("decision log buffer full")
            self._space.clear()
            await self._space.wait()
            self._check_open()
        loop = asyncio.get_running_loop()
        entry = LogEntry.link(
            self._redactor.apply(record), self._heads.get(record.tenant, ChainHead())
        )
        self._heads[record.tenant] = entry.head
        durable = self._config.mode is LogMode.DURABLE
        done: asyncio.Future[LogEntry] | None = loop.create_future() if durable else None
        self._pending.append(_Pending(entry, done, loop.time()))
        self._counters.appended += 1
        # The owner needs waking only to start a batch (and its deadline) or to flush a
        # full one; while it writes it takes whatever queued meanwhile by itself.
        if len(self._pending) in (1, self._config.max_batch):
            self._wake.set()
        return await done if done is not None else entry

    def stats(self) -> WriterStats:
        return self._counters.snapshot(self._mirror.errors if self._mirror is not None else 0)

    async def aclose(self) -> None:
        """Write everything accepted, checkpoint every changed stream, release the files.

        Raises `Unavailable` if the writer failed earlier, so a lossy shutdown is loud.
        """
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        self._space.set()
        task, self._task = self._task, None
        await task
        if self._mirror is not None:
            await self._mirror.aclose()
        await asyncio.to_thread(self._sink.close)
        if self._failure is not None:
            raise self._failure

    async def __aenter__(self) -> DecisionLogWriter:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._task is None or self._closing:
            raise Unavailable("decision log is not running")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending or not self._closing:
                if self._pending:
                    await self._gather(loop)
                    batch = self._pending[: self._config.max_batch]
                    del self._pending[: len(batch)]
                    self._space.set()
                    await self._flush(batch)
                    self._busy = bool(self._pending)
                else:
                    await self._idle(loop)
                if self._key is not None and loop.time() >= self._next_checkpoint:
                    await self._checkpoint(CheckpointEvent.INTERVAL)
                    self._next_checkpoint = loop.time() + self._config.checkpoint_interval
            await self._checkpoint(CheckpointEvent.CLOSE)
        except Exception as exc:
            self._fail("decision log write failed", exc)
        except BaseException as exc:
            self._fail("decision log writer was cancelled", exc)
            raise

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let a batch fill until its oldest record's deadline: `flush_interval` in
        buffered mode; in durable mode `commit_window`, and only under concurrent load
        (a lone caller's record is written at once)."""
        if self._config.mode is LogMode.DURABLE:
            if not self._busy:
                return
            wait = self._config.commit_window
        else:
            wait = self._config.flush_interval
        deadline = self._pending[0].queued_at + wait
        while len(self._pending) < self._config.max_batch and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    async def _idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wake.clear()
        timeout = None
        if self._key is not None:
            timeout = max(0.0, self._next_checkpoint - loop.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _flush(self, batch: list[_Pending]) -> None:
        entries = [p.entry for p in batch]
        started = time.perf_counter()
        try:
            fsyncs = await asyncio.to_thread(self._sink.write, entries)
        except BaseException:
            self._pending[:0] = batch  # so that _fail accounts for them
            raise
        self._counters.batch_written(len(batch), fsyncs, time.perf_counter() - started)
        for item in batch:
            self._durable[item.entry.tenant] = item.entry.head
            if item.done is not None and not item.done.done():  # done: the caller gave up
                item.done.set_result(item.entry)
        if self._mirror is not None:
            self._mirror.feed(entries)

    async def _checkpoint(self, event: CheckpointEvent) -> None:
        """Sign every stream's durable head; at an interval only if something changed."""
        if self._key is None:
            return
        heads = {t: h for t, h in self._durable.items() if h.seq >= 0}
        if event is CheckpointEvent.INTERVAL and heads == self._signed:
            return
        key, interval_ms = self._key, max(1, round(self._config.checkpoint_interval * 1000))

        def write() -> None:  # signing names every stream: off the event loop
            checkpoint = Checkpoint.sign(key, event, heads, datetime.now(UTC), interval_ms)
            self._sink.write_checkpoint(checkpoint.to_line())

        await asyncio.to_thread(write)
        self._counters.checkpoints += 1
        self._signed = heads

    def _fail(self, message: str, exc: BaseException) -> None:
        self._failure = Unavailable(message)
        lost = [p for p in self._pending if p.done is None]
        self._counters.dropped += len(lost)
        ids = [p.entry.record.decision_id for p in lost[:1] + lost[-1:]]
        log.error(
            "%s; %d buffered records were not written (decision ids %s)",
            message,
            len(lost),
            "..".join(ids) or "-",
            exc_info=exc,
        )
        for item in self._pending:
            if item.done is not None and not item.done.done():
                item.done.set_exception(self._failure)
        self._pending.clear()
        self._space.set()
