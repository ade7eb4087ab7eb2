"""Decision log configuration (built by `authz_service.config`, which reads the environment)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from authz_service.decisionlog.redact import parse_path
from authz_service.errors import InvalidArgument, echo

__all__ = ["DecisionLogConfig", "LogMode", "OverflowPolicy"]


class LogMode(StrEnum):
    DURABLE = "durable"
    """`append` returns after the record is written and fsync'd (group commit)."""
    BUFFERED = "buffered"
    """`append` returns at once; the record is fsync'd within `flush_interval`."""


class OverflowPolicy(StrEnum):
    BLOCK = "block"
    """A full queue makes `append` wait for space (backpressure on the caller)."""
    ERROR = "error"
    """A full queue makes `append` raise `Unavailable`; the caller fails the request."""


@dataclass(frozen=True, slots=True)
class DecisionLogConfig:
    root: Path
    """One sub-directory per tenant stream is created below it."""
    mode: LogMode = LogMode.DURABLE
    flush_interval: float = 0.2
    """Buffered mode: the longest a record waits before its write+fsync starts (seconds)."""
    commit_window: float = 0.005
    """Durable mode, only while other calls are in flight (`DecisionLogWriter.expecting`)
    or the last batch resolved more than one caller: the longest a batch waits for more
    records before its write+fsync starts (seconds, from its first record). Fewer, larger
    rounds cost less CPU per call (each pays a thread hand-off and an fsync); a lone
    caller never waits. 0 writes each batch as soon as the last one is done."""
    max_batch: int = 1000
    """Most records written by one write+fsync."""
    max_queue: int = 10_000
    """Most records accepted but not yet taken by the writer."""
    on_full: OverflowPolicy = OverflowPolicy.BLOCK
    max_segment_bytes: int | None = 64 * 1024 * 1024
    max_segment_age: float | None = 24 * 3600.0
    """Seconds; a segment older than this is closed at the next write."""
    checkpoint_interval: float = 60.0
    """Seconds between signed checkpoints, written whether or not anything changed; also
    one at start and one at close."""
    signing_key_path: Path | None = None
    """Ed25519 private key (PEM). Without it no checkpoints are written, and a cut tail
    cannot be detected; `authz audit keygen` creates one."""
    redact_paths: tuple[str, ...] = ()
    """JSON paths into the request context (`$.ssn`, `$.card.number`) replaced before hashing."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "mode", LogMode(self.mode))
        object.__setattr__(self, "on_full", OverflowPolicy(self.on_full))
        for path in self.redact_paths:
            parse_path(path)
        positive = {
            "flush_interval": self.flush_interval,
            "commit_window": self.commit_window or 1,
            "max_batch": self.max_batch,
            "max_queue": self.max_queue,
            "checkpoint_interval": self.checkpoint_interval,
            "max_segment_bytes": self.max_segment_bytes or 1,
            "max_segment_age": self.max_segment_age or 1,
        }
        for name, value in positive.items():
            if value <= 0:
                raise InvalidArgument(f"`{echo(name)}` must be positive", field=name, value=value)
