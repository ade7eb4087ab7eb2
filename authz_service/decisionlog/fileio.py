"""Low-level file operations of the file sink: full writes, directory fsync, tail reads.

All blocking; called from the writer's worker thread or at start-up.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from authz_service.decisionlog.chain import entry_from_line
from authz_service.errors import AuthzError

__all__ = ["cut_torn_tail", "fsync_dir", "last_line", "segment_started", "write_all"]

log = logging.getLogger("authz_service.decisionlog.sink_file")

_READ_CHUNK = 64 * 1024


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cut_torn_tail(path: Path) -> int:
    """Truncate bytes after the last newline of `path`; return the resulting size."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    keep = _end_of_last_newline(path, size)
    if keep < size:
        log.warning(
            "decision log `%s` ended in a torn line (%d bytes after the last newline, "
            "left by an interrupted write); removing it",
            path,
            size - keep,
        )
        with path.open("r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    return keep


def _end_of_last_newline(path: Path, size: int) -> int:
    """Offset just past the last b"\\n" in the first `size` bytes (0 if none)."""
    with path.open("rb") as handle:
        end = size
        while end > 0:
            start = max(0, end - _READ_CHUNK)
            handle.seek(start)
            index = handle.read(end - start).rfind(b"\n")
            if index >= 0:
                return start + index + 1
            end = start
    return 0


def last_line(path: Path) -> bytes | None:
    """The last complete line of a file, without its newline. Bytes after the last
    newline (a write in progress, seen by a reader) are not a line."""
    end = _end_of_last_newline(path, path.stat().st_size)
    if end == 0:
        return None
    start = _end_of_last_newline(path, end - 1)
    with path.open("rb") as handle:
        handle.seek(start)
        return handle.read(end - 1 - start)


def segment_started(path: Path) -> float:
    """When a segment was begun: its first record's time (the file's mtime if empty)."""
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        return entry_from_line(first.rstrip(b"\n")).record.time.timestamp()
    except AuthzError:
        return path.stat().st_mtime
