"""The file sink: append-only JSON Lines per tenant stream, rotated into segments.

Every method here blocks on disk I/O and is called from one worker thread at a time
(the writer's owner task awaits each call through `asyncio.to_thread`), so the classes
hold no locks of their own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from authz_service.decisionlog.chain import ChainHead, LogEntry, entry_from_line
from authz_service.decisionlog.fileio import (
    cut_torn_tail,
    fsync_dir,
    last_line,
    segment_started,
    write_all,
)
from authz_service.decisionlog.layout import (
    CHECKPOINT_FILE,
    LOCK_FILE,
    list_segments,
    list_streams,
    segment_name,
    shown,
    stream_dir_name,
    unexpected_in_root,
)
from authz_service.errors import AuthzError, FailedPrecondition, Unavailable

__all__ = ["FileSink", "FileStream"]

log = logging.getLogger(__name__)


class FileStream:
    """One tenant's directory: the open segment, rotation, fsync, crash recovery."""

    def __init__(
        self, directory: Path, tenant: str, *, max_bytes: int | None, max_age: float | None
    ) -> None:
        self.directory = directory
        self.tenant = tenant
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._fd: int | None = None
        self._number = 0  # current segment number; 0 = none yet
        self._size = 0
        self._opened_at = 0.0  # wall-clock start of the current segment, for age rotation

    def recover(self) -> ChainHead:
        """Find the head of an existing stream, cutting a torn final line first.

        Only bytes after the last newline are removed: they are a write that never
        completed, so in durable mode no caller was ever told it succeeded. A complete
        line that does not parse is corruption, not a crash artefact; we refuse to start
        rather than write after it.
        """
        if not self.directory.is_dir():
            return ChainHead()
        segments = list_segments(self.directory)
        if not segments:
            return ChainHead()
        self._number, newest = segments[-1]
        self._size = cut_torn_tail(newest)
        self._opened_at = segment_started(newest)
        for number, path in reversed(segments):
            last = last_line(path)
            if last is None:
                continue
            try:
                entry = entry_from_line(last)
            except AuthzError as exc:
                raise FailedPrecondition(
                    f"decision log `{path}` ends in a damaged record ({exc.message}); "
                    "run `authz audit verify`"
                ) from exc
            if entry.tenant != self.tenant:
                raise FailedPrecondition(f"decision log `{path}` holds another tenant's records")
            log.info(
                "decision log stream %r resumes after seq %d (%s)", self.tenant, entry.seq, number
            )
            return entry.head
        return ChainHead()

    def append(self, lines: Sequence[bytes], now: float) -> int:
        """Write `lines` (each without newline) and fsync; return the number of fsyncs."""
        fsyncs = 0
        pending: list[bytes] = []
        for line in lines:
            incoming = len(line) + 1
            if self._fd is not None and self._should_rotate(incoming, now):
                # The finished segment is made durable before the next one exists, so
                # only the newest segment can ever hold a torn line.
                write_all(self._fd, b"".join(pending))
                pending.clear()
                os.fsync(self._fd)
                fsyncs += 1
                self.close()
                self._create_segment(now)
            elif self._fd is None:
                if self._number and not self._should_rotate(incoming, now):
                    path = self.directory / segment_name(self._number)
                    self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                else:
                    self._create_segment(now)
            pending.append(line + b"\n")
            self._size += incoming
        assert self._fd is not None
        write_all(self._fd, b"".join(pending))
        os.fsync(self._fd)
        return fsyncs + 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _should_rotate(self, incoming: int, now: float) -> bool:
        if self._size == 0:
            return False  # never leave an empty segment behind
        too_big = self._max_bytes is not None and self._size + incoming > self._max_bytes
        too_old = self._max_age is not None and now - self._opened_at >= self._max_age
        return too_big or too_old

    def _create_segment(self, now: float) -> None:
        if not self.directory.exists():
            self.directory.mkdir(parents=True)
            fsync_dir(self.directory.parent)
        self._number += 1
        self._fd = os.open(
            self.directory / segment_name(self._number),
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL,
            0o644,
        )
        # Without this the new file's directory entry may not survive a crash even
        # though its contents were fsync'd.
        fsync_dir(self.directory)
        self._size = 0
        self._opened_at = now


class FileSink:
    """All tenant streams below one root directory, owned by one writer process."""

    def __init__(
        self, root: Path, *, max_segment_bytes: int | None, max_segment_age: float | None
    ) -> None:
        self.root = root
        self._max_bytes = max_segment_bytes
        self._max_age = max_segment_age
        self._streams: dict[str, FileStream] = {}
        self._lock_fd: int | None = None

    def open(self) -> dict[str, ChainHead]:
        """Take the writer lock and recover the head of every existing stream."""
        if not self.root.is_dir():
            self.root.mkdir(parents=True)
            fsync_dir(self.root.parent)  # so the root itself survives a crash
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            # Two writers on one stream would fork its chain; a second process must use
            # its own root (or send its records to the one writer).
            raise Unavailable(f"decision log `{self.root}` is in use by another writer") from exc
        self._lock_fd = fd
        cut_torn_tail(self.root / CHECKPOINT_FILE)
        for path in unexpected_in_root(self.root):
            # Never adopted as a stream (a renamed `%64emo` is not `demo`'s): records of
            # its tenant go to the tenant's own directory, and verify reports the entry.
            log.warning(
                "decision log root %s holds `%s`, which is not a stream: left alone; "
                "run `authz audit verify`",
                self.root,
                shown(path.name),
            )
        heads = {}
        for tenant, directory in list_streams(self.root):
            heads[tenant] = self._stream(tenant, directory).recover()
        return heads

    def write(self, entries: Sequence[LogEntry], now: float | None = None) -> int:
        """Write entries (already chained) to their streams and fsync; return fsync count."""
        by_tenant: dict[str, list[bytes]] = {}
        for entry in entries:
            by_tenant.setdefault(entry.tenant, []).append(entry.line)
        moment = time.time() if now is None else now
        return sum(self._stream(t).append(lines, moment) for t, lines in by_tenant.items())

    def write_checkpoint(self, line: bytes) -> None:
        """Append one signed checkpoint line to the root's checkpoint file and fsync."""
        path = self.root / CHECKPOINT_FILE
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            write_all(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.root)

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _stream(self, tenant: str, directory: Path | None = None) -> FileStream:
        stream = self._streams.get(tenant)
        if stream is None:
            path = directory or self.root / stream_dir_name(tenant)
            stream = FileStream(path, tenant, max_bytes=self._max_bytes, max_age=self._max_age)
            self._streams[tenant] = stream
        return stream
