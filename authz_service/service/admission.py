"""Per-tenant shares of the server: one tenant's calls cannot take every slot.

AUTHZ_MAX_CONCURRENT_RPCS bounds the calls the whole server runs at once; without a
share per tenant, one tenant sending expensive calls could hold all of them and every
other tenant would wait. A call over its tenant's share is refused at once with
RESOURCE_EXHAUSTED naming the limit: the caller retries with backoff, while the other
tenants are served as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from authz_service.errors import LimitExceeded

__all__ = ["TenantSlots"]


class TenantSlots:
    """Counts each tenant's calls in flight; `hold` refuses one past `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy: dict[str, int] = {}

    def in_flight(self, tenant: str) -> int:
        return self._busy.get(tenant, 0)

    @contextmanager
    def hold(self, tenant: str) -> Iterator[None]:
        busy = self._busy.get(tenant, 0)
        if busy >= self.limit:
            raise LimitExceeded(
                f"tenant `{tenant}` already has {busy} calls in flight, the limit "
                f"AUTHZ_TENANT_MAX_CONCURRENT_RPCS = {self.limit}"
            )
        self._busy[tenant] = busy + 1
        try:
            yield
        finally:
            left = self._busy[tenant] - 1
            if left:
                self._busy[tenant] = left
            else:
                del self._busy[tenant]
