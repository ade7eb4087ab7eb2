"""Whether the current call's relationship reads must be answered by the primary.

A store with read replicas sends a read at revision R to a replica that has replayed R
(`store/postgres/replicas.py`), which is exact for every consistency mode. A
fully_consistent call is still answered by the primary alone: it asks for the
database's newest state, and operators reading it as "the primary's answer" (for
example right after an incident on a replica) should not have to trust a replica.

A context variable for the same reason as `authz_service.deadline`: the resolver knows
the call's consistency, the store three layers down does the reading. grpc.aio runs every
call in a task of its own, so the flag holds for that call and nothing else.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["primary_only", "require_primary"]

_PRIMARY_ONLY: ContextVar[bool] = ContextVar("authz_primary_only", default=False)


def require_primary() -> None:
    """Answer every further relationship read of the running task from the primary."""
    _PRIMARY_ONLY.set(True)


def primary_only() -> bool:
    return _PRIMARY_ONLY.get()
