"""Translate asyncpg failures into the service's error tree, in one place.

Callers never see SQL or driver messages: connection loss, pool timeouts and server
shutdowns become `Unavailable("database unavailable")`; the details go to the log. A
timeout that came from the call's own deadline running out is `DeadlineExceeded`: the
database may be fine, and a client retries UNAVAILABLE but not an exhausted deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import asyncpg
from asyncpg.exceptions._base import DataError as ArgumentEncodingError

from authz_service import deadline
from authz_service.errors import (
    AlreadyExists,
    AuthzError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)

__all__ = [
    "OUT_OF_TIME",
    "UNAVAILABLE",
    "connecting",
    "is_connection_lost",
    "retry_once_if_lost",
    "translated",
]

logger = logging.getLogger("authz_service.store.postgres")

T = TypeVar("T")

# Failures that say "the database cannot serve you right now", as opposed to bugs.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # pool acquire or connect timeout
    asyncpg.PostgresConnectionError,  # includes "connection was closed in the middle"
    asyncpg.InterfaceError,  # "connection is closed", "pool is closed"
    asyncpg.InternalClientError,  # a connection ended in doubt (see is_connection_lost)
    asyncpg.OperatorInterventionError,  # admin shutdown, crash, cannot connect now, cancel
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.TransactionRollbackError,  # serialization failure or deadlock: retryable
)

UNAVAILABLE = "database unavailable"
OUT_OF_TIME = "deadline exceeded while waiting for the database"


def is_connection_lost(exc: BaseException) -> bool:
    """True when the statement failed because its connection died, so that a retry on a
    fresh connection may succeed (the pool replaces dead connections by itself).

    InternalClientError counts: asyncpg raises it when its protocol is not where an
    operation needs it, and that connection is then ended (by asyncpg, else by
    `Database.acquire`). It is how a pooled connection whose session the server ended
    (FATAL, then the socket closed) fails if it is used after the error was read but
    before the end of the stream was: "cannot switch to state 11; another operation (2)
    is in progress", raised before anything is sent."""
    return isinstance(
        exc,
        ConnectionError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError,
    )


@contextmanager
def translated(level: int = logging.WARNING) -> Iterator[None]:
    """asyncpg's failures as the service's errors; an outage is logged at `level` (a
    replica's at DEBUG: its replica set reports its changes of state instead)."""
    try:
        yield
    except AuthzError:
        raise
    except asyncpg.UniqueViolationError:
        # The writers check identities themselves; this only fires on a race they missed.
        raise AlreadyExists("relationship already exists") from None
    except (asyncpg.DataError, ArgumentEncodingError) as exc:
        logger.info("database rejected a value: %s: %s", type(exc).__name__, exc)
        raise InvalidArgument(
            "request contains a value the database cannot store (for example a NUL character)"
        ) from None
    except asyncpg.ProgramLimitExceededError as exc:
        logger.info("database limit exceeded: %s", exc)
        raise InvalidArgument("relationship is too large to store") from None
    except TimeoutError as exc:
        if deadline.remaining() == 0:
            raise DeadlineExceeded(OUT_OF_TIME) from exc
        logger.log(level, "database unavailable: %s: %s", type(exc).__name__, exc)
        raise Unavailable(UNAVAILABLE) from exc
    except _UNAVAILABLE_ERRORS as exc:
        logger.log(level, "database unavailable: %s: %s", type(exc).__name__, exc)
        raise Unavailable(UNAVAILABLE) from exc


@contextmanager
def connecting() -> Iterator[None]:
    """Opening a pool: a database that does not exist, a role the server does not know or
    a refused password is a setting to fix, not an outage, and the server's reason says
    which (it names the database or the role, never the password). A URL that does not
    parse is refused without quoting it or the parser: either may hold the password."""
    try:
        yield
    except (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise FailedPrecondition(f"the database refused the connection: {exc}") from None
    except ValueError:
        raise InvalidArgument("the database url is not a valid postgresql url") from None
    except OverflowError:  # the socket's refusal of a port above 65535
        raise InvalidArgument("the database url's port is not from 1 to 65535") from None


async def retry_once_if_lost(
    operation: Callable[[], Awaitable[T]], level: int = logging.WARNING
) -> T:
    """Run a read; if its connection turned out dead, run it once more.

    After an outage the pool may still hold connections whose sockets died; the first
    statement on each fails. Reads are safe to repeat, writes are not (the commit may
    have happened), so only readers use this. Outages are logged at `level`.
    """
    try:
        with translated(level):
            return await operation()
    except Unavailable as exc:
        if exc.__cause__ is None or not is_connection_lost(exc.__cause__):
            raise
    with translated(level):
        return await operation()
