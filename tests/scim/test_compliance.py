"""scim2-tester, an outside compliance checker, against a tenant's SCIM endpoint.

It discovers the server (ServiceProviderConfig, ResourceTypes, Schemas), then creates,
reads, lists, searches, replaces, patches (add / replace / remove of every attribute)
and deletes Users and Groups. Every check it runs must pass. Checks it does not run are
those of features the configuration declares unsupported: bulk and password change
(see docs/identity.md); they are reported, not counted.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server
from scim2_tester.utils import Status

from tests.scim.conftest import ScimServer

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


async def test_scim2_tester_reports_every_check_passing(scim: ScimServer) -> None:
    token = await scim.key("acme")
    with httpx2.Client(
        base_url=f"{scim.base}/acme/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as http:
        # The checker is synchronous; it runs in a thread while the server runs here.
        results = await asyncio.to_thread(check_server, SyncSCIMClient(http))
    skipped = [r for r in results if r.status is Status.SKIPPED]
    for r in skipped:
        print(f"not applicable: {r.title} ({r.resource_type}): {r.reason}")
    failed = [r for r in results if r.status not in PASSING | {Status.SKIPPED}]
    assert failed == [], "\n".join(f"{r.status.name} {r.title}: {r.reason}" for r in failed)
    titles = Counter(r.title for r in results if r.status in PASSING)
    # What ran: discovery, and the whole CRUD and PATCH cycle for both resource types.
    for title in (
        "service_provider_config_endpoint",
        "query_all_schemas",
        "query_all_resource_types",
        "object_creation",
        "object_query",
        "object_query_without_id",
        "object_replacement",
        "object_deletion",
        "check_add_attribute",
        "check_replace_attribute",
        "check_remove_attribute",
        "random_url",
    ):
        assert titles[title] >= 1, title
    # Nothing skipped for want of a prerequisite: only checks of unsupported features.
    assert all("bulk" in (r.title or "") or "password" in (r.title or "") for r in skipped)
