"""The current call's deadline, visible to every layer that may wait or work for long.

The service sets it once per call (`within`); the engine checks it between subproblems
and the PostgreSQL store bounds every query and pool wait by what is left of it. A
context variable rather than a parameter, because the deadline must reach a storage
read three layers down without every protocol in between carrying it; asyncio copies
it into tasks the call starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import final

__all__ = ["bind", "cleared", "current", "remaining", "within"]

_DEADLINE: ContextVar[float | None] = ContextVar("authz_deadline", default=None)


def current() -> float | None:
    """The call's deadline as a `time.monotonic()` instant, or None outside a call."""
    return _DEADLINE.get()


def remaining() -> float | None:
    """Seconds left before the deadline (0 when passed), or None outside a call."""
    deadline = _DEADLINE.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def bind(deadline: float) -> None:
    """Make `deadline` the current one for the rest of the running task (an earlier one
    stays in force). For the API layer: grpc.aio runs every call in a task of its own,
    so the deadline holds for every read and write of that call and for nothing else."""
    outer = _DEADLINE.get()
    if outer is None or deadline < outer:
        _DEADLINE.set(deadline)


@contextmanager
def cleared() -> Iterator[None]:
    """No deadline inside: for starting background work that outlives the call (a task
    copies the context it is created in, and would inherit the call's deadline)."""
    token = _DEADLINE.set(None)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def within(deadline: float | None) -> _Within:
    """A context manager that makes `deadline` the current one inside (an earlier one
    already set stays in force)."""
    return _Within(deadline)


@final
class _Within:
    # A class, not a @contextmanager generator: a cache-hit Check enters two, and the
    # generator machinery cost more than the context variable itself.
    __slots__ = ("_deadline", "_token")

    def __init__(self, deadline: float | None) -> None:
        self._deadline = deadline
        self._token: Token[float | None] | None = None

    def __enter__(self) -> None:
        deadline, outer = self._deadline, _DEADLINE.get()
        if deadline is not None and (outer is None or deadline < outer):
            self._token = _DEADLINE.set(deadline)

    def __exit__(self, *_raised: object) -> None:
        if self._token is not None:
            _DEADLINE.reset(self._token)
            self._token = None
