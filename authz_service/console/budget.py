"""The playground's share of worker 0, whose event loop serves gRPC too.

The in-memory world (console/sandbox.py) is evaluated in the console's process, not
through a call, so no interceptor bounds it; this does for it what api/calls.py does for
a call. A request's work (building the world, loading it, each assertion or question, the
explanation) runs under the server's default deadline (AUTHZ_DEFAULT_DEADLINE_MS), which
the engine checks between steps, and a tenant's requests take turns, one at a time, each
waiting for its turn within its deadline: the console never evaluates more than one
world per tenant at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from authz_service import deadline
from authz_service.errors import DeadlineExceeded

__all__ = ["Budget"]


class Budget:
    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        # A lock per tenant that used the playground, kept: a few hundred bytes each.
        self._turns: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @asynccontextmanager
    async def spend(self, tenant: str) -> AsyncIterator[None]:
        """Run the block as the tenant's turn, under the deadline. Past it the block is
        stopped and DeadlineExceeded names the limit: what the block had found is not
        an answer, and is not to be shown."""
        try:
            with deadline.within(time.monotonic() + self.deadline_s):
                async with asyncio.timeout(self.deadline_s), self._turns[tenant]:
                    yield
        except (TimeoutError, DeadlineExceeded):
            raise DeadlineExceeded(
                "the playground stopped at the server's default deadline, "
                f"AUTHZ_DEFAULT_DEADLINE_MS = {round(self.deadline_s * 1000)}, before it "
                "finished (a tenant's evaluations take turns): nothing was concluded; "
                "try a smaller world or fewer assertions"
            ) from None
