"""Refresh ahead: the Checks a tenant asked in the current quantization window, computed
at the next window's revision shortly before that window begins.

Every minimize_latency read of a tenant shares one revision per window
(revisions.py), and the decision cache's keys carry it, so when a tenant takes writes each
worker misses once per window on every hot Check, on the caller's time. With refresh
ahead the worker computes those Checks in the background at the revision the next
window will pin (`RevisionResolver.upcoming`), so that the callers of the next window are
answered from the cache. The answers are the same as without it: the same evaluation at a
revision the next window pins anyway. The work is the same as the misses it replaces,
except for a Check asked in one window and not the next.

Only Checks answered from the cache are remembered: asked again within a window, they are
likely to be asked in the next, while traffic that asks each Check once (a gateway
walking many users) is never computed twice. Only plain ones (of Check and of CheckBulk):
no context, no actor or agents, no explanation, no request-only relationships (those are
never shared through the cache anyway). At most 512 per tenant for 128 tenants, so the
memory is bounded (~65k small tuples) and so is the work one window's end can start.
They are kept as tuples of strings (`plain_item`), which the cycle collector stops
tracking, so that its full collections do not walk them (docs/performance.md, "Uncached
p99 and the cycle collector").
"""

from __future__ import annotations

from collections.abc import Iterable

from authz_service.engine import CheckItem
from authz_service.model import Revision
from authz_service.service.bulk_items import PlainItem, plain_item

__all__ = ["AskedChecks"]


class AskedChecks:
    """The plain Checks asked per tenant at the current window's revision, at most
    `per_tenant` of them (the first asked), for at most `tenants` tenants (those whose
    window began last)."""

    def __init__(self, per_tenant: int = 512, tenants: int = 128) -> None:
        self._per_tenant = per_tenant
        self._tenants = tenants
        self._asked: dict[str, tuple[Revision, dict[CheckItem | PlainItem, None]]] = {}

    def add(self, tenant: str, revision: Revision, item: CheckItem | PlainItem) -> None:
        self.add_many(tenant, revision, (item,))

    def add_many(
        self, tenant: str, revision: Revision, items: Iterable[CheckItem | PlainItem]
    ) -> None:
        entry = self._asked.get(tenant)
        if entry is None or entry[0] != revision:
            if entry is None and len(self._asked) >= self._tenants:
                del self._asked[next(iter(self._asked))]
            entry = (revision, {})
            self._asked.pop(tenant, None)
            self._asked[tenant] = entry  # the most recently asked tenant last
        asked = entry[1]
        for item in items:
            if len(asked) >= self._per_tenant:
                break
            asked[plain_item(item)] = None

    def at(self, tenant: str, revision: Revision) -> list[CheckItem | PlainItem]:
        """The Checks asked at `revision` (none if the tenant has moved on since)."""
        entry = self._asked.get(tenant)
        if entry is None or entry[0] != revision:
            return []
        return list(entry[1])
