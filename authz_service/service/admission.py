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
from typing import final

from authz_service.errors import LimitExceeded

__all__ = ["TenantSlots", "WatchSlots"]


class TenantSlots:
    """Counts each tenant's calls in flight; `hold` refuses one past `limit`, naming
    the `setting` that sets it and what it counts (`held`)."""

    def __init__(
        self,
        limit: int,
        *,
        setting: str = "AUTHZ_TENANT_MAX_CONCURRENT_RPCS",
        held: str = "calls in flight",
    ) -> None:
        self.limit = limit
        self.setting = setting
        self.held = held
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
        slots, tenant = self._slots, self._tenant
        busy_by_tenant = slots._busy
        busy = busy_by_tenant.get(tenant, 0)
        if busy >= slots.limit:
            raise LimitExceeded(
                f"tenant `{tenant}` already has {busy} {slots.held}, the limit "
                f"{slots.setting} = {slots.limit}"
            )
        busy_by_tenant[tenant] = busy + 1

    def __exit__(self, *_raised: object) -> None:
        busy_by_tenant, tenant = self._slots._busy, self._tenant
        left = busy_by_tenant[tenant] - 1
        if left:
            busy_by_tenant[tenant] = left
        else:
            del busy_by_tenant[tenant]


class WatchSlots:
    """Open Watch streams: at most `per_tenant` of one tenant, `total` in the server.

    gRPC counts an open stream against AUTHZ_MAX_CONCURRENT_RPCS for as long as it is
    open, and a watch stays open for hours while it waits: one tenant's idle watches
    took every slot, and every other call of every tenant was refused. `total` is kept
    below that cap (Settings), so calls other than watches always find room; the share
    per tenant keeps one tenant from taking all of `total`."""

    def __init__(self, per_tenant: int, total: int) -> None:
        self.tenants = TenantSlots(
            per_tenant, setting="AUTHZ_TENANT_MAX_WATCHES", held="watches open"
        )
        self.total = total
        self.open = 0

    @contextmanager
    def hold(self, tenant: str) -> Iterator[None]:
        """Counts one watch of `tenant` while the block runs; LimitExceeded past either
        limit (the tenant's first: it is the one its caller can do something about)."""
        with self.tenants.hold(tenant):
            if self.open >= self.total:
                raise LimitExceeded(
                    f"the server already has {self.open} watches open, the limit "
                    f"AUTHZ_MAX_WATCHES = {self.total}"
                )
            self.open += 1
            try:
                yield
            finally:
                self.open -= 1
