"""Where the file sink keeps things, and how readers walk it.

    ROOT/
      .writer.lock              held (flock) by the one writer process
      checkpoints.jsonl         signed checkpoints, each naming every stream's head
      <tenant>/                 one stream per tenant; name is the escaped tenant id
        000001.jsonl            segments, numbered from 1; the chain runs across them
        000002.jsonl
        checkpoints.jsonl       format 1 checkpoints of this stream (older writers only)

Readers (verify, query) never take the lock; a line without its newline at the very
end of the newest segment is a write in progress (or torn by a crash) and is skipped.
"""

from __future__ import annotations

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
    "list_segments",
    "list_streams",
    "read_lines",
    "segment_name",
    "stream_dir_name",
    "tenant_from_dir_name",
]

CHECKPOINT_FILE = "checkpoints.jsonl"
LOCK_FILE = ".writer.lock"
_SEGMENT_RE = re.compile(r"([0-9]{6,})\.jsonl")
# Tenant ids may hold characters that are not safe in a path (`/`, `..`); everything
# outside this set is written as %XX of its UTF-8 bytes, which also keeps names unique.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def stream_dir_name(tenant: str) -> str:
    if not tenant:
        raise InvalidArgument("tenant must not be empty", field="tenant")
    return "".join(
        ch if ch in _SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in tenant
    )


def tenant_from_dir_name(name: str) -> str:
    try:
        return unquote(name, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"`{echo(name)}` is not a stream directory name") from exc


def segment_name(number: int) -> str:
    return f"{number:06d}.jsonl"


def list_segments(stream_dir: Path) -> list[tuple[int, Path]]:
    """Segment files of a stream in chain order (by number, not by name)."""
    if not stream_dir.is_dir():
        return []  # a stream whose first write has not happened yet
    found = []
    for path in stream_dir.iterdir():
        match = _SEGMENT_RE.fullmatch(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def list_streams(root: Path) -> list[tuple[str, Path]]:
    """(tenant, directory) of every stream below `root`, sorted by tenant."""
    if not root.is_dir():
        return []
    streams = [
        (tenant_from_dir_name(p.name), p)
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".")
    ]
    return sorted(streams)


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
