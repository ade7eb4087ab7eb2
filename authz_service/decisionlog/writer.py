"""The decision log writer: chains on the event loop; one thread batches, writes, checkpoints.

`append` links the record into its tenant's chain synchronously (no await between
reading the head and queueing the entry), so concurrent appends are chained in the
order they were accepted. A long-lived writer thread takes whatever is queued, writes
it with one write+fsync per stream, and only then resolves the batch's durable appends
with one hop back to the event loop: records that arrive during an fsync ride along
with the next one (group commit). The thread is handed records through a condition
variable rather than a thread hop per round, which is most of a round's cost at low
concurrency.

A durable batch waits for company only while other calls will append soon (as
PostgreSQL's commit_siblings and commit_delay do): up to `commit_window` from its first
record, while a call wrapped in `expecting` is "in flight" (until it appends or ends),
or while callers are arriving together, which the previous batch shows by resolving more
than one caller. The second matters most: a cache hit appends in the same step of the
event loop that began it, so it is never seen in flight, and the calls behind it wait
in gRPC, where the writer cannot count them. Each round costs a thread hand-off and an
fsync whatever its size, so under load fewer, larger rounds cost less CPU per call. A
lone caller (one caller per batch) is never delayed.

On a failed write or fsync the writer stops for good: after a failed fsync the kernel
may already have dropped the dirty pages, so a retried fsync can report success for
data that is gone. Every waiting and later `append` raises `Unavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authz_service.decisionlog.chain import ChainHead, LogEntry
from authz_service.decisionlog.check_record import EncodedCheck
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


class _Call:
    """A call in `expecting`, and the context manager that marks it; `owes` is cleared by
    its first append. Mutable, so that an append in a task started by the call (which
    copies the context) clears it too. A class rather than a @contextmanager generator:
    every logged call enters one."""

    __slots__ = ("_token", "_writer", "owes")

    def __init__(self, writer: DecisionLogWriter) -> None:
        self._writer = writer
        self.owes: DecisionLogWriter | None = writer
        self._token: Token[_Call | None] | None = None

    def __enter__(self) -> None:
        self._writer._expected += 1
        self._token = _call.set(self)

    def __exit__(self, *_raised: object) -> None:
        if self._token is not None:
            _call.reset(self._token)
            self._token = None
        if self.owes is not None:  # ended without a record: a batch may wait for it
            self._writer._ended_without_record()


_call: ContextVar[_Call | None] = ContextVar("decision_log_call", default=None)


@dataclass(slots=True)
class _Pending:
    entry: LogEntry
    done: asyncio.Future[LogEntry] | None  # durable mode: resolved after the fsync
    queued_at: float  # time.monotonic()
    # A caller waits for this record: its own `done`, or the last of its group's.
    waited: bool = False


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
        self._heads: dict[str, ChainHead] = {}  # including queued entries (event loop)
        # Owned by the writer thread once it runs:
        self._durable: dict[str, ChainHead] = {}  # fsync'd entries only: what checkpoints sign
        self._next_checkpoint = 0.0  # time.monotonic()
        self._company = False  # the last durable batch resolved more than one caller
        # Shared; guarded by `_ready`:
        self._ready = threading.Condition()
        self._queue: list[_Pending] = []
        self._closing = False
        # The thread's wait for a batch ends when no call is left in flight (else it
        # waits out the window, and waking it for that would only cost a thread switch).
        self._ends_when_idle = True
        # Event loop only:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._space = asyncio.Event()
        self._waiting_for_space = False
        self._expected = 0  # calls in `expecting` that have not appended yet
        self._failure: Unavailable | None = None
        self._broken = asyncio.Event()  # set with `_failure`
        self._counters = Counters()

    async def start(self) -> None:
        if self._thread is not None or self._closing:
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
            await asyncio.to_thread(self._checkpoint, CheckpointEvent.START)
        except BaseException:
            await asyncio.to_thread(self._sink.close)
            raise
        self._next_checkpoint = time.monotonic() + self._config.checkpoint_interval
        if self._mirror is not None:
            self._mirror.start()
        self._loop = loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, self._stopped), name="decision-log-writer", daemon=True
        )
        self._thread.start()

    def expecting(self) -> AbstractContextManager[None]:
        """Around a call that will append: until it does (or ends), it counts as in
        flight, and a durable batch may wait up to `commit_window` for its record."""
        return _Call(self)

    def _ended_without_record(self) -> None:
        self._expected -= 1
        if self._expected == 0 and self._ends_when_idle:
            with self._ready:
                self._ready.notify()

    async def append(self, record: DecisionRecord | EncodedCheck) -> LogEntry:
        """Chain `record` into its tenant's stream; return the stored entry.

        Durable mode returns once the entry is on disk and fsync'd. Buffered mode returns
        at once. Raises `Unavailable` when the writer is closed or failed, or when the
        queue is full and `on_full` is `error`.
        """
        return (await self.append_many([record]))[0]

    async def append_many(self, records: Sequence[DecisionRecord | EncodedCheck]) -> list[LogEntry]:
        """`append` for the records of one call (CheckBulk's items), queued together in
        order: durable mode waits for one fsync that covers them all, not one each. The
        group is admitted as a whole when the queue has room, so it may pass
        `max_queue` by its own size."""
        call = _call.get()
        if call is not None and call.owes is self:
            call.owes = None
            self._expected -= 1
        self._check_open()
        while len(self._queue) >= self._config.max_queue:
            if self._config.on_full is OverflowPolicy.ERROR:
                self._counters.rejected += len(records)
                raise Unavailable("decision log buffer full")
            self._space.clear()
            self._waiting_for_space = True
            await self._space.wait()
            self._waiting_for_space = False
            self._check_open()
        heads, redact = self._heads, self._redactor.apply
        entries = []
        for record in records:
            entry = LogEntry.link(redact(record), heads.get(record.tenant, ChainHead()))
            heads[record.tenant] = entry.head
            entries.append(entry)
        durable = self._config.mode is LogMode.DURABLE
        now = time.monotonic()
        pending = [_Pending(entry, None, now, durable) for entry in entries]
        done = None
        if durable and pending:
            # Batches are written in order, so the last record's fsync covers the group;
            # a failure before it fails this future too (`_fail`).
            done = pending[-1].done = asyncio.get_running_loop().create_future()
        queue = self._queue
        with self._ready:
            was_empty = not queue
            queue.extend(pending)
            # Wake the thread only when this can end its wait (`_take`): it waits for a
            # first record, then for a full batch, or in durable mode, unless it holds
            # the batch for company, for no call left in flight. A wake-up per record
            # costs a thread switch each.
            full = len(queue) >= self._config.max_batch
            idle = durable and self._expected == 0 and self._ends_when_idle
            if was_empty or full or idle:
                self._ready.notify()
        self._counters.appended += len(pending)
        if done is not None:
            await done
        return entries

    def redacts(self, context: Mapping[str, Any]) -> bool:
        """Whether a record with this request context has a value of it redacted."""
        return self._redactor.covers(context)

    async def wait_broken(self) -> None:
        """Return once the writer has stopped for good (a write or fsync failed): every
        append fails from then on, and only a new writer (a restart) can recover."""
        await self._broken.wait()

    def stats(self) -> WriterStats:
        return self._counters.snapshot(self._mirror.errors if self._mirror is not None else 0)

    async def aclose(self) -> None:
        """Write everything accepted, checkpoint every stream, stop the thread,
        release the files. Raises `Unavailable` if the writer failed earlier, so a lossy
        shutdown is loud."""
        thread, stopped = self._thread, self._stopped
        if thread is None or stopped is None:
            return
        self._thread = None
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._space.set()
        await stopped
        await asyncio.to_thread(thread.join)
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
        if self._thread is None or self._closing:
            raise Unavailable("decision log is not running")

    # --- the writer thread ---

    def _run(self, loop: asyncio.AbstractEventLoop, stopped: asyncio.Future[None]) -> None:
        batch: list[_Pending] = []
        try:
            while (batch := self._take()) or not self._closing:
                if batch:
                    started = time.perf_counter()
                    fsyncs = self._sink.write([p.entry for p in batch])
                    for item in batch:
                        self._durable[item.entry.tenant] = item.entry.head
                    loop.call_soon_threadsafe(
                        self._resolve, batch, fsyncs, time.perf_counter() - started
                    )
                    batch = []
                if self._key is not None and time.monotonic() >= self._next_checkpoint:
                    self._checkpoint(CheckpointEvent.INTERVAL)
                    self._next_checkpoint = time.monotonic() + self._config.checkpoint_interval
            self._checkpoint(CheckpointEvent.CLOSE)
        except Exception as exc:
            loop.call_soon_threadsafe(self._fail, "decision log write failed", exc, batch)
        finally:
            loop.call_soon_threadsafe(stopped.set_result, None)

    def _take(self) -> list[_Pending]:
        """Wait for records (or a due checkpoint, or close); return the next batch, which
        waits until its oldest record's deadline: `flush_interval` in buffered mode; in
        durable mode `commit_window`, and only while other calls are about to append:
        calls in flight, or company like the last batch's."""
        config = self._config
        durable = config.mode is LogMode.DURABLE
        with self._ready:
            while not self._queue and not self._closing:
                timeout = None
                if self._key is not None:
                    timeout = self._next_checkpoint - time.monotonic()
                    if timeout <= 0:
                        return []
                self._ready.wait(timeout)
            if self._queue:
                wait = config.commit_window if durable else config.flush_interval
                deadline = self._queue[0].queued_at + wait
                self._ends_when_idle = not self._company
                while (
                    len(self._queue) < config.max_batch
                    and not self._closing
                    and (not durable or self._company or self._expected > 0)
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._ready.wait(remaining)
                self._ends_when_idle = True
            batch = self._queue[: config.max_batch]
            del self._queue[: len(batch)]
        if durable and batch:
            # A caller waits on the last record of its group only: count those.
            self._company = sum(p.done is not None for p in batch) > 1
        if batch and self._waiting_for_space:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._space.set)
        return batch

    def _checkpoint(self, event: CheckpointEvent) -> None:
        """Sign every stream's durable head. At an interval also when nothing changed, so
        that a record dated more than an interval after the newest checkpoint shows that
        later ones were removed (verify_tail.py). That costs an idle log what a busy one
        writes anyway: one line per interval."""
        if self._key is None:
            return
        heads = {t: h for t, h in self._durable.items() if h.seq >= 0}
        interval_ms = max(1, round(self._config.checkpoint_interval * 1000))
        checkpoint = Checkpoint.sign(self._key, event, heads, datetime.now(UTC), interval_ms)
        self._sink.write_checkpoint(checkpoint.to_line())
        self._counters.checkpoints += 1  # the only writer of this counter once started

    # --- back on the event loop ---

    def _resolve(self, batch: list[_Pending], fsyncs: int, seconds: float) -> None:
        self._counters.batch_written(len(batch), fsyncs, seconds)
        for item in batch:
            if item.done is not None and not item.done.done():  # done: the caller gave up
                item.done.set_result(item.entry)
        if self._mirror is not None:
            self._mirror.feed([p.entry for p in batch])

    def _fail(self, message: str, exc: BaseException, batch: list[_Pending]) -> None:
        self._failure = Unavailable(message)
        self._broken.set()
        with self._ready:
            unwritten = batch + self._queue
            self._queue.clear()
        lost = [p for p in unwritten if not p.waited]
        self._counters.dropped += len(lost)
        ids = [p.entry.record.decision_id for p in lost[:1] + lost[-1:]]
        log.error(
            "%s; %d buffered records were not written (decision ids %s)",
            message,
            len(lost),
            "..".join(ids) or "-",
            exc_info=exc,
        )
        for item in unwritten:
            if item.done is not None and not item.done.done():
                item.done.set_exception(self._failure)
        self._space.set()
