"""An Okta-style provisioning sequence over real HTTP against a real server on PostgreSQL.

Create a user, add it to a group, the group can view a document: ALLOWED. Okta's
deactivation (a path-less replace of `active`): DENIED from the returned token, a cached
ALLOWED included. Entra's reactivation, removal from the group and re-adding, then
DELETE: deprovisioned. Each lifecycle step is an admin record naming the push.
"""

from __future__ import annotations

from typing import Any

import httpx2 as httpx

from authz_service.api.gen.authz.v1 import audit_pb2, audit_pb2_grpc, core_pb2
from authz_service.api.scim.app import TOKEN_HEADER
from tests.api.helpers import ALLOWED, DENIED, Api, subj
from tests.scim.conftest import ScimServer

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


async def pushed(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    token: str = response.headers[TOKEN_HEADER]
    return token


async def view(api: Api, user: str, token: str) -> Any:
    return await api.check("acme", "document:plan", "view", f"user:{user}", fresh=token)


async def test_okta_sequence(scim: ScimServer) -> None:
    keyed = await scim.keyed()
    api = Api(keyed)  # type: ignore[arg-type]
    async with await scim.http() as http:
        created = await http.post(
            "/Users",
            json={
                "schemas": [USER_SCHEMA],
                "userName": "dana@acme.example",
                "externalId": "00u1okta",
                "name": {"givenName": "Dana", "familyName": "Scully"},
                "emails": [{"value": "dana@acme.example", "primary": True, "type": "work"}],
                "active": True,
            },
        )
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        group = await http.post(
            "/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Engineering"}
        )
        assert group.status_code == 201, group.text
        gid = group.json()["id"]
        await api.touch("acme", f"document:plan#viewer@group:{gid}#member")

        added = await pushed(
            await http.patch(
                f"/Groups/{gid}",
                json=patch({"op": "add", "path": "members", "value": [{"value": uid}]}),
            ),
            204,
        )
        assert (await view(api, uid, added)).decision == ALLOWED
        assert (await view(api, uid, added)).decision == ALLOWED  # now cached

        # Okta deactivates with a path-less value object.
        suspended = await pushed(
            await http.patch(
                f"/Users/{uid}", json=patch({"op": "replace", "value": {"active": False}})
            ),
            204,
        )
        for _ in range(2):  # the second from the cache
            reply = await view(api, uid, suspended)
            assert reply.decision == DENIED
            assert reply.explanation.deny_reason == core_pb2.DENY_REASON_SUBJECT_SUSPENDED
        record = (await http.get(f"/Users/{uid}")).json()
        assert (record["active"], record["externalId"]) == (False, "00u1okta")
        assert record["name"] == {"givenName": "Dana", "familyName": "Scully"}

        # Entra reactivates with a path and a capitalised op.
        active = await pushed(
            await http.patch(
                f"/Users/{uid}", json=patch({"op": "Replace", "path": "active", "value": True})
            ),
            204,
        )
        assert (await view(api, uid, active)).decision == ALLOWED

        removed = await pushed(
            await http.patch(
                f"/Groups/{gid}",
                json=patch({"op": "remove", "path": f'members[value eq "{uid}"]'}),
            ),
            204,
        )
        assert (await view(api, uid, removed)).decision == DENIED
        assert (await http.get(f"/Groups/{gid}")).json().get("members", []) == []

        readded = await pushed(
            await http.patch(
                f"/Groups/{gid}",
                json=patch({"op": "add", "path": "members", "value": [{"value": uid}]}),
            ),
            204,
        )
        assert (await view(api, uid, readded)).decision == ALLOWED

        gone = await http.delete(f"/Users/{uid}")
        deprovisioned = await pushed(gone, 204)
        reply = await api.check("acme", "document:plan", "view", f"user:{uid}", fresh=deprovisioned)
        assert reply.decision == DENIED
        assert reply.explanation.deny_reason == core_pb2.DENY_REASON_SUBJECT_DEPROVISIONED
        assert (await http.get(f"/Users/{uid}")).status_code == 404
        # Deprovisioning removed the membership, and the group no longer lists the user.
        assert (await http.get(f"/Groups/{gid}")).json().get("members", []) == []

    audit = audit_pb2_grpc.AuditServiceStub(keyed)  # type: ignore[arg-type]
    records = [
        r.record
        async for r in audit.QueryDecisions(
            audit_pb2.QueryDecisionsRequest(
                tenant="acme",
                kind=audit_pb2.DECISION_KIND_ADMIN,
                subject=subj(f"user:{uid}"),
            )
        )
    ]
    lifecycle = "/authz.v1.TenancyService/"
    assert [(r.action, r.reason) for r in records] == [
        (f"{lifecycle}SuspendSubject", f"scim: PATCH Users/{uid}"),
        (f"{lifecycle}ReactivateSubject", f"scim: PATCH Users/{uid}"),
        (f"{lifecycle}DeprovisionSubject", f"scim: DELETE Users/{uid}"),
    ]
    scim_key = {r.credential_id for r in records}
    assert len(scim_key) == 1
    assert "" not in scim_key
    assert all(r.actor.object.object_type == "api_key" for r in records)
    assert all(r.decision == core_pb2.DECISION_ALLOWED for r in records)
