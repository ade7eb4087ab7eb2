"""Per-tenant shares of the server: one tenant's calls cannot take every slot.

AUTHZ_MAX_CONCURRENT_RPCS bounds the calls the whole server runs at once; without a
share per tenant, one tenant sending expensive calls could hold all of them and every
other tenant would wait. A call over its tenant's share is refused at once with
RESOURCE_EXHAUSTED naming the limit: the caller retries with backoff, while the other
tenants are served as usual.
"""

from __future__ import annotations

from typing import final

from authz_service.errors import LimitExceeded

__all__ = ["TenantSlots"]


class TenantSlots:
    """Counts each tenant's calls in flight; `hold` refuses one past `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._busy: dict[str, int] = {}

    def in_flight(self, tenant: str) -> int:
        return self._busy.get(tenant, 0)

    def hold(self, tenant: str) -> _Held:
        """A context manager that takes one of `tenant`'s slots on entry (LimitExceeded
        when none is left) and gives it back on exit."""
        return _Held(self, tenant)


@final
class _Held:
    # A class, not a @contextmanager generator: every call enters one, and the
    # generator's frame and wrapper cost more than the counting itself.
    __slots__ = ("_slots", "_tenant")

    def __init__(self, slots: TenantSlots, tenant: str) -> None:
        self._slots = slots
        self._tenant = tenant

    def __enter__(self) -> None:
        busy_by_tenant, tenant = self._slots._busy, self._tenant
        busy = busy_by_tenant.get(tenant, 0)
        if busy >= self._slots.limit:
            raise LimitExceeded(
                f"tenant `{tenant}` already has {busy} calls in flight, the limit "
                f"AUTHZ_TENANT_MAX_CONCURRENT_RPCS = {self._slots.limit}"
            )
        busy_by_tenant[tenant] = busy + 1

    def __exit__(self, *_raised: object) -> None:
        busy_by_tenant, tenant = self._slots._busy, self._tenant
        left = busy_by_tenant[tenant] - 1
        if left:
            busy_by_tenant[tenant] = left
        else:
            del busy_by_tenant[tenant]
