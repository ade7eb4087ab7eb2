"""Counters of the decision log writer, exposed as a frozen snapshot for metrics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Counters", "WriterStats"]


@dataclass(frozen=True, slots=True)
class WriterStats:
    queued: int  # accepted, not yet written
    appended: int  # accepted in total
    written: int  # written and fsync'd
    batches: int  # write+fsync rounds
    fsyncs: int  # fsync calls on segment files (one per stream per batch, more on rotation)
    fsync_seconds_last: float  # wall time of the last batch's write+fsync
    fsync_seconds_avg: float
    checkpoints: int
    rejected: int  # appends refused with "buffer full": the caller got the error
    dropped: int  # accepted, never written: stays 0 unless the disk failed (logged as error)
    mirror_errors: int


class Counters:
    """Mutable counters owned by the writer. The event loop updates them, except
    `checkpoints`, which only the writer thread updates once it runs."""

    __slots__ = (
        "appended",
        "batches",
        "checkpoints",
        "dropped",
        "fsyncs",
        "rejected",
        "seconds_last",
        "seconds_total",
        "written",
    )

    def __init__(self) -> None:
        self.appended = self.written = self.batches = self.fsyncs = 0
        self.checkpoints = self.rejected = self.dropped = 0
        self.seconds_last = self.seconds_total = 0.0

    def batch_written(self, records: int, fsyncs: int, seconds: float) -> None:
        self.batches += 1
        self.written += records
        self.fsyncs += fsyncs
        self.seconds_last = seconds
        self.seconds_total += seconds

    def snapshot(self, mirror_errors: int) -> WriterStats:
        return WriterStats(
            queued=self.appended - self.written - self.dropped,
            appended=self.appended,
            written=self.written,
            batches=self.batches,
            fsyncs=self.fsyncs,
            fsync_seconds_last=self.seconds_last,
            fsync_seconds_avg=self.seconds_total / self.batches if self.batches else 0.0,
            checkpoints=self.checkpoints,
            rejected=self.rejected,
            dropped=self.dropped,
            mirror_errors=mirror_errors,
        )
