"""The unsigned tail: a stream's records that no checkpoint covers.

The writer signs every stream of its root at start (before any append), every
checkpoint interval, and at close; a record is on disk before the checkpoint that
covers it. So with a public key, uncovered records are a failure, named by the first of
them (or the offending one), when

* the root has no valid checkpoint at all (they were deleted, or the log was written
  without a signing key, or signed only in format 1 by an older writer);
* the newest checkpoint is the writer's `close`: nothing may follow it, not even an
  incomplete last line (a torn write is honest only while a writer may be writing, and
  a writer appends nothing before its `start` checkpoint);
* the newest checkpoint is of format 3 and one of them is dated later than its time +
  its interval + `SLACK`: that writer signs every interval, changed or not, so while it
  ran a later checkpoint was written, and was removed. Format 2 writers skipped an
  interval when nothing had changed, so after one of theirs an idle stretch followed by
  a record is honest, and this rule is not applied;
* the oldest of them is dated more than interval + `SLACK` before verification time:
  the first interval checkpoint after it (of any format: a record is a change) is due by
  then, so later checkpoints were removed, or the writer crashed and has not been started
  again (its start checkpoint signs them).

Otherwise they are a live writer's last interval, and only a warning, as is an
incomplete last line. Without a key every case is a warning.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from authz_service.decisionlog.checkpoint import Checkpoint, CheckpointEvent
from authz_service.decisionlog.layout import CHECKPOINT_FILE, Line
from authz_service.decisionlog.record import parse_time
from authz_service.decisionlog.verify_report import Finding, Problem, finding_at
from authz_service.errors import AuthzError

__all__ = ["SLACK", "Tail"]

SLACK = timedelta(seconds=30)
"""Allowance for a batch write and a checkpoint write on a slow disk."""


class Tail:
    """Fed every good record in chain order (`add`), then asked for a verdict (`judge`)."""

    def __init__(self, covered: int, newest: tuple[Checkpoint, int] | None, strict: bool) -> None:
        self.covered, self.newest, self.strict = covered, newest, strict
        self.count = 0
        self.first: tuple[Line, dict[str, Any]] | None = None
        self.late: tuple[Line, dict[str, Any], str] | None = None
        self.oldest: datetime | None = None
        self.last_seq = -1
        self.torn: tuple[Line, int] | None = None  # an incomplete last line, at its seq
        self.interval = timedelta(milliseconds=newest[0].interval_ms) if newest else timedelta()
        # Only a writer that signs every interval vouches that nothing may be dated past it.
        every_interval = newest is not None and newest[0].every_interval
        self.bound = newest[0].time + self.interval + SLACK if newest and every_interval else None

    def add(self, line: Line, data: dict[str, Any]) -> None:
        if data["seq"] <= self.covered:
            return
        self.count, self.last_seq = self.count + 1, data["seq"]
        if self.first is None:
            self.first = (line, data)
        text = data.get("time")
        try:
            at = parse_time(text) if isinstance(text, str) else None
        except AuthzError:
            at = None
        if at is None:
            reason = "has no valid time, so it cannot be placed within the checkpoint interval"
            self.late = self.late or (line, data, reason)
            return
        self.oldest = at if self.oldest is None else min(self.oldest, at)
        if self.bound is not None and at > self.bound:
            reason = (
                f"is dated {_time(at)}, not within its checkpoint interval and "
                f"{SLACK.seconds}s: the writer signs every interval, changed or not, so "
                "later checkpoints were removed"
            )
            self.late = self.late or (line, data, reason)

    def add_torn(self, line: Line, seq: int) -> list[str]:
        """The newest segment ends in `line`, without a newline, where `seq` would be.
        Honest while a writer may be writing it (a warning, returned); after a `close`
        it is judged with the rest of the tail."""
        if self.newest is not None and self.newest[0].event is CheckpointEvent.CLOSE:
            self.torn = (line, seq)
            return []
        return [f"{line.segment.name}:{line.number} is an incomplete last line"]

    def judge(self, now: datetime, records: int) -> tuple[Finding | None, list[str]]:
        """A failure (or, without a key, warnings) about the tail of a stream of `records`."""
        if self.newest is None:
            if records == 0:
                return None, []
            if not self.strict:
                return None, ["no valid checkpoint of this root: a cut tail cannot be detected"]
            message = (
                "no valid checkpoint of this root signs the stream: checkpoints were "
                "removed, or the log was written without a signing key or signed only in "
                "format 1 (a current writer signs it when it next opens the log)"
            )
            return self._verdict(message, self.first)
        checkpoint, number = self.newest
        where = f"the newest checkpoint at {CHECKPOINT_FILE}:{number} ({_time(checkpoint.time)})"
        if self.first is None and self.torn is not None:  # set only after a close
            line, seq = self.torn
            message = (
                f"an incomplete line follows {where}, the writer's last: appended after it "
                "closed (a write torn by a crash cannot follow a close)"
            )
            return self._verdict(message, (line, _parsed(line) or {"seq": seq}))
        if self.first is None:
            return None, []
        n = f"{self.count} record{'s' if self.count != 1 else ''}"
        span = f"{n} (seq {self.first[1]['seq']}..{self.last_seq})"
        if checkpoint.event is CheckpointEvent.CLOSE:
            message = f"{span} follow {where}, the writer's last: appended after it closed"
            return self._verdict(message, self.first)
        if self.late is not None:
            message = f"this record after {where} {self.late[2]}"
            return self._verdict(message, self.late[:2])
        if self.oldest is not None and self.oldest < now - self.interval - SLACK:
            message = (
                f"{span} after {where}, the oldest dated {_time(self.oldest)}, are still "
                "unsigned after the checkpoint interval: later checkpoints were removed, "
                "or the writer crashed and was not started again (its start signs them)"
            )
            return self._verdict(message, self.first)
        return None, [f"{span} after {where}: not signed yet (within one checkpoint interval)"]

    def _verdict(
        self, message: str, at: tuple[Line, dict[str, Any]] | None
    ) -> tuple[Finding | None, list[str]]:
        if not self.strict:
            return None, [message]
        if at is None:
            return Finding(Problem.UNSIGNED, message, None, None, None, None), []
        line, data = at
        return finding_at(Problem.UNSIGNED, message, line, data["seq"], data), []


def _parsed(line: Line) -> dict[str, Any] | None:
    """The record an incomplete line holds, if it is one whole (to name its decision)."""
    try:
        data = json.loads(line.data)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("seq"), int) else None


def _time(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}Z"
