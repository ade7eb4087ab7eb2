"""When and how long the clients wait before trying a call again.

Only UNAVAILABLE is retried: it means the call did not reach a working server (connection
refused, server draining, database down), so trying again cannot do anything twice that
the server would not also deduplicate. Reads are always safe to retry; relationship
writes are, because the client gives each one an idempotency key that the server
deduplicates. DEADLINE_EXCEEDED is never retried: the caller's time budget is spent, and a
write may have committed. Every other code is an answer, not an outage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

__all__ = ["Backoff", "Deadline"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: retry `n` (from 0) waits between half and all of
    `min(maximum, initial * multiplier**n)` seconds.

    Keeping half the step fixed bounds how soon a retry comes; the random half spreads
    many clients that failed together so that they do not come back together.
    """

    initial: float = 0.05
    maximum: float = 1.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.multiplier < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and multiplier >= 1")

    def delay(self, retry: int, rand: float) -> float:
        """Seconds to wait before retry number `retry`, for `rand` uniform in [0, 1)."""
        step = min(self.maximum, self.initial * self.multiplier**retry)
        return step / 2 + step / 2 * rand


def is_retryable(code: grpc.StatusCode | None, *, idempotent: bool) -> bool:
    return idempotent and code == grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class Deadline:
    """The end of a call's time budget, shared by all its attempts (None: no deadline)."""

    at: float | None

    @classmethod
    def after(cls, timeout: float | None) -> Deadline:
        return cls(None if timeout is None else time.monotonic() + timeout)

    def remaining(self) -> float | None:
        """Seconds left for the next attempt; a tiny positive floor lets gRPC report
        DEADLINE_EXCEEDED itself instead of the client inventing a status."""
        if self.at is None:
            return None
        return max(self.at - time.monotonic(), 0.001)

    def allows_wait(self, seconds: float) -> bool:
        """True if waiting `seconds` still leaves time for another attempt."""
        return self.at is None or time.monotonic() + seconds < self.at
