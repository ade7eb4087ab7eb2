"""Reading a whole log directory as an auditor does: every stream of every writer.

A server with one worker writes its streams straight under the log directory; with
several workers each worker owns a root `worker-N/` (one writer per root, see
`app._log_writer`), so one tenant has one stream per worker. Readers take no lock.

    LOG_DIR/                 a root (single worker), or only the worker roots below
      .writer.lock
      acme/000001.jsonl
      worker-0/.writer.lock  a worker root
      worker-0/acme/000001.jsonl

Entries come out tenant by tenant (sorted); the streams of one tenant are merged by
decision time, each in its own chain order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import re
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import groupby, islice
from pathlib import Path

from authz_service.decisionlog import (
    RecordFilter,
    StoredEntry,
    VerifyReport,
    iter_entries,
    verify_all,
)
from authz_service.decisionlog.chain import entry_from_line
from authz_service.decisionlog.checkpoint import PublicKeys, keys_by_id
from authz_service.decisionlog.fileio import last_line
from authz_service.decisionlog.layout import LOCK_FILE, list_segments, list_streams
from authz_service.errors import AuthzError, FailedPrecondition, NotFound, echo

__all__ = [
    "Found",
    "Stream",
    "aiter_log",
    "find_in_log",
    "iter_log",
    "list_log_streams",
    "log_ends",
    "log_roots",
    "verify_log",
]

_WORKER_ROOT = re.compile(r"worker-[0-9]+")


@dataclass(frozen=True, slots=True)
class Stream:
    root: str  # "" for the log directory itself, else the worker root's name
    tenant: str
    directory: Path

    @property
    def name(self) -> str:
        """`acme`, or `worker-1/acme` for a worker's stream."""
        return f"{self.root}/{self.tenant}" if self.root else self.tenant


@dataclass(frozen=True, slots=True)
class Found:
    stream: Stream
    stored: StoredEntry


def _is_worker_root(path: Path) -> bool:
    """A `worker-N` directory holding streams (a tenant may be called `worker-1` too:
    its directory holds segments, not a lock file and streams)."""
    if not (_WORKER_ROOT.fullmatch(path.name) and path.is_dir()):
        return False
    if (path / LOCK_FILE).exists():
        return True
    return not list_segments(path) and any(p.is_dir() for p in path.iterdir())


def log_roots(log_dir: Path) -> list[tuple[str, Path]]:
    """(label, root) of every writer root in `log_dir`, the directory itself first."""
    if not log_dir.is_dir():
        raise NotFound(f"decision log directory `{log_dir}` does not exist")
    workers = sorted(
        (p for p in log_dir.iterdir() if _is_worker_root(p)),
        key=lambda p: int(p.name.split("-", 1)[1]),
    )
    return [("", log_dir), *((p.name, p) for p in workers)]


def list_log_streams(log_dir: Path, tenant: str | None = None) -> list[Stream]:
    """Every stream, sorted by tenant, then root."""
    found = [
        Stream(label, name, directory)
        for label, root in log_roots(log_dir)
        for name, directory in _root_streams(label, root)
        if tenant is None or name == tenant
    ]
    return sorted(found, key=lambda s: (s.tenant, s.root))


def _root_streams(label: str, root: Path) -> list[tuple[str, Path]]:
    """The stream directories of one root (the log directory's worker roots are not)."""
    return [
        (name, directory)
        for name, directory in list_streams(root)
        if not (label == "" and _is_worker_root(directory))
    ]


def iter_log(
    log_dir: Path,
    where: RecordFilter | None = None,
    *,
    after: Mapping[str, int] | None = None,
    through: Mapping[str, int] | None = None,
) -> Generator[Found, None, None]:
    """Entries matching `where`; `after` maps a stream name to the last seq already seen
    (a resumed query skips up to it), `through` to the last seq to read (a query's
    later pages end where its first page found the log ended; a stream it does not
    name is not read). Without `through`, every stream to its end."""
    where = where or RecordFilter()
    after = after or {}
    streams = list_log_streams(log_dir, where.tenant)
    for _, group in groupby(streams, key=lambda s: s.tenant):
        sources = [
            _stream_entries(
                s,
                where,
                after.get(s.name, -1),
                None if through is None else through.get(s.name, -1),
            )
            for s in group
        ]
        yield from heapq.merge(
            *sources, key=lambda f: (f.stored.entry.record.time, f.stored.entry.record.decision_id)
        )


def _stream_entries(
    stream: Stream, where: RecordFilter, after_seq: int, through_seq: int | None
) -> Iterator[Found]:
    # iter_entries keys the stream by tenant below a root; give it this stream's root.
    for stored in iter_entries(stream.directory.parent, replace(where, tenant=stream.tenant)):
        if through_seq is not None and stored.entry.seq > through_seq:
            return
        if stored.entry.seq > after_seq:
            yield Found(stream, stored)


def log_ends(log_dir: Path, tenant: str) -> dict[str, int]:
    """The last seq of every stream of `tenant` (-1 for an empty one): where the log
    ends now, to hold a paged query to it (`iter_log(through=...)`)."""
    return {s.name: _last_seq(s) for s in list_log_streams(log_dir, tenant)}


def _last_seq(stream: Stream) -> int:
    for _, path in reversed(list_segments(stream.directory)):
        line = last_line(path)
        if line is None:
            continue
        try:
            return entry_from_line(line).seq
        except AuthzError as exc:
            # No path: API callers see this message.
            raise FailedPrecondition(
                f"decision log stream `{stream.name}` ends in a damaged record: verify the log"
            ) from exc
    return -1


async def aiter_log(
    log_dir: Path,
    where: RecordFilter | None = None,
    *,
    after: Mapping[str, int] | None = None,
    through: Mapping[str, int] | None = None,
    chunk: int = 256,
) -> AsyncIterator[Found]:
    """`iter_log` with the file reading in a worker thread, `chunk` entries at a time."""
    entries = iter_log(log_dir, where, after=after, through=through)  # a generator: no I/O yet
    try:
        while batch := await asyncio.to_thread(lambda: list(islice(entries, chunk))):
            for found in batch:
                yield found
    finally:
        # Cancelled while a chunk is read, the generator is still running in its thread
        # (ValueError): it is then closed when collected.
        with contextlib.suppress(ValueError):
            entries.close()


def find_in_log(log_dir: Path, decision_id: str, *, tenant: str | None = None) -> Found:
    for found in iter_log(log_dir, RecordFilter(tenant=tenant, decision_id=decision_id)):
        return found
    raise NotFound(f"decision `{echo(decision_id)}` is not in the decision log")


def verify_log(
    log_dir: Path, public_keys: PublicKeys | None, *, tenant: str | None = None
) -> list[tuple[Stream, VerifyReport]]:
    """Verify every stream (of `tenant`, if given) of every root against that root's
    checkpoints, including streams they name that are gone; sorted like `list_log_streams`.
    `public_keys`: the log's key, or every key it was signed with (`verify_all`)."""
    # A tuple, read once per root (`public_keys` may be an iterator).
    keys = None if public_keys is None else tuple(keys_by_id(public_keys).values())
    results = []
    for label, root in log_roots(log_dir):
        streams = _root_streams(label, root)
        for report in verify_all(root, keys, streams=streams, tenant=tenant):
            results.append((Stream(label, report.stream, report.directory), report))
    return sorted(results, key=lambda result: (result[0].tenant, result[0].root))
