"""A SCIM push or read while the database sits behind a network that drops packets ends
within the server's default deadline with 503, as a gRPC call does
(tests/api/test_budget_database.py). SCIM requests ran with no deadline at all: they
hung for as long as the network did, holding the tenant's provisioning lock, so every
later push of the tenant queued behind them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from authz_service.credentials import Scope, new_key
from tests.api.blackhole import Blackhole
from tests.api.conftest import server_settings, start_app

DEADLINE_MS = 1000
# A hang guard, not a speed assertion: the request must not outlive its deadline by much.
HANG_GUARD_S = 3 * DEADLINE_MS / 1000


@pytest.mark.timeout(120)
async def test_blackholed_database_ends_scim_requests_within_the_deadline(
    pg_dsn: str, tmp_path: Path
) -> None:
    async with Blackhole("127.0.0.1", 5432) as hole:
        dsn = pg_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{hole.port}")
        settings = server_settings(
            dsn, tmp_path, auth=True, scim_listen="127.0.0.1:0", default_deadline_ms=DEADLINE_MS
        )
        app = await start_app(settings, tenants=("acme",))
        try:
            record, token = new_key(tenant="acme", scopes=frozenset({Scope.SCIM}))
            await app.store.keys.create(record)
            assert app.scim is not None
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{app.scim.port}/scim/v2/acme",
                headers={"Authorization": f"Bearer {token}"},
                timeout=4 * HANG_GUARD_S,  # so that a hang fails, not stalls
            ) as http:
                # The key is verified once before the outage (then from the key cache).
                assert (await http.get("/Users")).status_code == 200
                hole.blackhole()
                started = time.monotonic()
                # Two pushes at once: the second waits for the first only so long.
                responses = await asyncio.gather(
                    http.post("/Users", json={"userName": "dana"}),
                    http.post("/Users", json={"userName": "erin"}),
                    http.get("/Users"),
                )
                elapsed = time.monotonic() - started
                assert [r.status_code for r in responses] == [503] * 3, responses[0].text
                assert elapsed < HANG_GUARD_S, f"the requests hung {elapsed:.1f}s"
        finally:
            await app.stop(grace=1.0)
