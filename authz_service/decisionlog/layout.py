"""Where the file sink keeps things, and how readers walk it.

    ROOT/
      .writer.lock              held (flock) by the one writer process
      checkpoints.jsonl         signed checkpoints, each naming every stream's head
      <tenant>/                 one stream per tenant; name is the escaped tenant id
        000001.jsonl            segments, numbered from 1; the chain runs across them
        000002.jsonl
        checkpoints.jsonl       format 1 checkpoints of this stream (older writers only)

Nothing else is the writer's. A stream directory is named exactly `stream_dir_name` of
its tenant, and a name is read as a stream only if it is that name (`%64emo` decodes to
`demo`, but is not `demo`'s directory), so no second directory can pass for a stream,
and a renamed one is missing. Likewise a segment is a file named exactly `segment_name`
of its number (`0000002.jsonl` is no second segment 2). `unexpected_in_root` and
`unexpected_in_stream` list everything else for verify.

Readers (verify, query) never take the lock; a line without its newline at the very
end of the newest segment is a write in progress (or torn by a crash) and is skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from authz_service.errors import InvalidArgument, echo

__all__ = [
    "CHECKPOINT_FILE",
    "LOCK_FILE",
    "Line",
    "claimed_tenant",
    "list_segments",
    "list_streams",
    "read_lines",
    "segment_name",
    "segment_number",
    "shown",
    "stream_dir_name",
    "tenant_from_dir_name",
    "unexpected_in_root",
    "unexpected_in_stream",
]

CHECKPOINT_FILE = "checkpoints.jsonl"
LOCK_FILE = ".writer.lock"
_SEGMENT_RE = re.compile(r"([0-9]{6,})\.jsonl")
# Tenant ids may hold characters that are not safe in a path (`/`, `..`); everything
# outside this set is written as %XX of its UTF-8 bytes, which also keeps names unique.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_DIR_NAME = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+")
# ext2-4 make it at the top of every file system: a log directory that is a volume's
# mount point holds one. It can be no stream (a tenant of that name is `lost%2Bfound`).
_LOST_FOUND = "lost+found"


def stream_dir_name(tenant: str) -> str:
    if not tenant:
        raise InvalidArgument("tenant must not be empty", field="tenant")
    return "".join(
        ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in tenant
    )


def tenant_from_dir_name(name: str) -> str:
    """The tenant whose stream directory is called `name`."""
    tenant = _tenant_of(name)
    if tenant is None:
        raise InvalidArgument(f"`{echo(shown(name))}` is not a stream directory name")
    return tenant


def _tenant_of(name: str) -> str | None:
    # The inverse of stream_dir_name and nothing more: a name that decodes to a tenant
    # but is not what the writer makes of it (`%64emo`, lower-case hex) is no stream's.
    tenant = claimed_tenant(name) if _DIR_NAME.fullmatch(name) else None
    return tenant if tenant is not None and stream_dir_name(tenant) == name else None


def claimed_tenant(name: str) -> str | None:
    """The tenant a name decodes to, written by the writer or not (`%64emo`: `demo`):
    whose stream a stray directory may have been. Never a reason to read it."""
    try:
        tenant = unquote(name, errors="strict")
        tenant.encode("utf-8")  # a name of undecodable bytes holds lone surrogates
    except UnicodeError:
        return None
    return tenant or None


def shown(name: str) -> str:
    """A file name as printable text on one line: a name is anyone's input, and a
    newline in it could forge a line of a report."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def segment_name(number: int) -> str:
    return f"{number:06d}.jsonl"


def segment_number(name: str) -> int | None:
    """The number of the segment called `name`, if the writer would call one that."""
    match = _SEGMENT_RE.fullmatch(name)
    number = int(match.group(1)) if match else 0
    return number if number >= 1 and segment_name(number) == name else None


def list_segments(stream_dir: Path) -> list[tuple[int, Path]]:
    """Segment files of a stream in chain order (by number, not by name)."""
    if not stream_dir.is_dir():
        return []  # a stream whose first write has not happened yet
    found = []
    for path in stream_dir.iterdir():
        number = segment_number(path.name)
        if number is not None and path.is_file():
            found.append((number, path))
    return sorted(found)


def unexpected_in_stream(stream_dir: Path) -> list[Path]:
    """Everything in a stream directory but its segments and (from older writers) its
    checkpoint file, sorted: no reader reads it, so verify must name it."""
    if not stream_dir.is_dir():
        return []
    return sorted(path for path in stream_dir.iterdir() if not _written_in_stream(path))


def _written_in_stream(path: Path) -> bool:
    made = path.name == CHECKPOINT_FILE or segment_number(path.name) is not None
    return made and path.is_file()


def list_streams(root: Path) -> list[tuple[str, Path]]:
    """(tenant, directory) of every stream below `root`, sorted by tenant."""
    if not root.is_dir():
        return []
    streams = []
    for path in root.iterdir():
        tenant = _tenant_of(path.name)
        if tenant is not None and path.is_dir():
            streams.append((tenant, path))
    return sorted(streams)


def unexpected_in_root(root: Path) -> list[Path]:
    """Everything in `root` but the lock file, the checkpoint file, the streams of
    `list_streams` and a file system's `lost+found`, sorted: no reader reads it, so
    verify must name it."""
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir() if not _written_in_root(path))


def _written_in_root(path: Path) -> bool:
    if path.name in (LOCK_FILE, CHECKPOINT_FILE):
        return path.is_file()
    if path.name == _LOST_FOUND:
        return path.is_dir()
    return _tenant_of(path.name) is not None and path.is_dir()


@dataclass(frozen=True, slots=True)
class Line:
    segment: Path
    number: int  # 1-based line number within the segment
    data: bytes  # without the trailing newline
    complete: bool  # False only for a trailing fragment without newline


def read_lines(path: Path) -> Iterator[Line]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            complete = raw.endswith(b"\n")
            yield Line(path, number, raw[:-1] if complete else raw, complete)
