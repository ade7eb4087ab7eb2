"""What one SCIM request carries from the HTTP layer down to the storage adapter.

scim2-server calls the storage with resources only; the tenant, the caller's key and the
request line travel in a context variable set per request (each request runs in its own
task), and the storage records there the revision its write produced, which the
response then carries as `X-Authz-Token`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from authz_service.credentials import ApiKey
from authz_service.model import Revision

__all__ = ["RequestState", "current"]


@dataclass(slots=True)
class RequestState:
    """Mutable on purpose: the storage fills in `revision` after the write."""

    tenant: str
    method: str
    path: str
    key: ApiKey | None = None
    revision: Revision | None = None
    peer: str | None = None  # the caller's address, whose failed keys are backed off

    @property
    def reason(self) -> str:
        return f"scim: {self.method} {self.path.strip('/')}"


_state: ContextVar[RequestState] = ContextVar("scim_request")


def current() -> RequestState:
    return _state.get()


def enter(state: RequestState) -> None:
    _state.set(state)
