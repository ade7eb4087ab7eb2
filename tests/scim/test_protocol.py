"""SCIM over real HTTP: authentication, errors with scimType, idempotent pushes, ETags,
list/filter/paging, group membership atomicity and tenant isolation."""

from __future__ import annotations

from typing import Any

import grpc
import httpx2 as httpx
import pytest

from authz_service.api.gen.authz.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    relationships_pb2,
    tenants_pb2,
)
from authz_service.api.scim.app import TOKEN_HEADER
from authz_service.credentials import Scope
from tests.api.helpers import ALLOWED, DENIED, Api, subj
from tests.scim.conftest import ScimServer
from tests.scim.test_okta_story import GROUP_SCHEMA, USER_SCHEMA, patch

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def user(name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": name, **extra}


def group(name: str, *members: str) -> dict[str, Any]:
    return {
        "schemas": [GROUP_SCHEMA],
        "displayName": name,
        "members": [{"value": m} for m in members],
    }


def error(response: httpx.Response, status: int, scim_type: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    detail: str = body["detail"]
    return detail


async def create(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    response = await http.post(path, json=body)
    assert response.status_code == 201, response.text
    resource_id: str = response.json()["id"]
    return resource_id


async def relationships(api: Api, tenant: str = "acme") -> list[str]:
    request = relationships_pb2.ReadRelationshipsRequest(tenant=tenant)
    request.consistency.fully_consistent = True
    found = []
    async for reply in api.relationships.ReadRelationships(request):
        r = reply.relationship
        subject = f"{r.subject.object.object_type}:{r.subject.object.object_id}"
        if r.subject.relation:
            subject += f"#{r.subject.relation}"
        found.append(f"{r.resource.object_type}:{r.resource.object_id}#{r.relation}@{subject}")
    return sorted(found)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer azk_x_y"]
)
async def test_no_or_invalid_key_is_401(scim: ScimServer, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(base_url=f"{scim.base}/acme") as http:
        response = await http.get("/Users", headers=headers)
        error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        # The configuration is public (RFC 7643 §5), the rest is not.
        assert (await http.get("/ServiceProviderConfig")).status_code == 200
        error(await http.post("/Users", json=user("x"), headers=headers), 401)


async def test_failed_keys_are_backed_off_per_address_as_on_grpc(scim: ScimServer) -> None:
    # fails on da50222: the SCIM port verified keys with an authenticator of its own,
    # without the failure limits of docs/auth.md ("Failed attempts"): a guesser could try
    # secrets there without end
    good = await scim.key("acme", Scope.SCIM)
    prefix, key_id, _ = good.split("_", 2)
    wrong = {"Authorization": f"Bearer {prefix}_{key_id}_{'A' * 43}"}
    async with httpx.AsyncClient(base_url=f"{scim.base}/acme") as http:
        statuses = [(await http.get("/Users", headers=wrong)).status_code for _ in range(25)]
        assert statuses[0] == 401
        assert set(statuses) == {401, 429}
        assert statuses[-1] == 429
        held = await http.post("/Users", json=user("x"), headers=wrong)
        assert "too many failed authentications" in error(held, 429)


async def test_a_forwarded_for_header_does_not_make_a_new_address(scim: ScimServer) -> None:
    """The address is the connection's. uvicorn trusts X-Forwarded-For from 127.0.0.1 by
    default, so a local guesser that sent a new value with every request was a new
    address each time and never held off."""
    good = await scim.key("acme", Scope.SCIM)
    prefix, key_id, _ = good.split("_", 2)
    wrong = f"Bearer {prefix}_{key_id}_{'A' * 43}"
    async with httpx.AsyncClient(base_url=f"{scim.base}/acme") as http:
        statuses = []
        for i in range(25):
            headers = {"Authorization": wrong, "X-Forwarded-For": f"10.1.{i}.1"}
            statuses.append((await http.get("/Users", headers=headers)).status_code)
    assert statuses[-1] == 429


async def test_failures_on_scim_count_for_the_same_address_on_grpc(scim: ScimServer) -> None:
    """docs/auth.md: one count per address for every door. The SCIM port passed the bare
    host (`127.0.0.1`) where gRPC has `ipv4:127.0.0.1:PORT`, so the two counted apart."""
    good = await scim.key("acme", Scope.SCIM)
    prefix, key_id, _ = good.split("_", 2)
    wrong = {"Authorization": f"Bearer {prefix}_{key_id}_{'A' * 43}"}
    async with httpx.AsyncClient(base_url=f"{scim.base}/acme") as http:
        statuses = [(await http.get("/Users", headers=wrong)).status_code for _ in range(25)]
    assert statuses[-1] == 429  # this address is held off on the SCIM port
    checker = await scim.api("acme")
    with pytest.raises(grpc.aio.AioRpcError) as held:
        await checker.check("acme", "document:d", "view", "user:ann")
    assert held.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_other_tenant_or_scope_is_403(scim: ScimServer) -> None:
    globex = await scim.key("globex")
    no_scim = await scim.key("acme", Scope.CHECK, Scope.WRITE)
    platform = await scim.key("*", Scope.SCIM)
    async with httpx.AsyncClient(base_url=f"{scim.base}/acme") as http:
        for token in (globex, no_scim):
            response = await http.get("/Users", headers={"Authorization": f"Bearer {token}"})
            assert "scim" in error(response, 403) or "globex" not in response.text
        response = await http.get("/Users", headers={"Authorization": f"Bearer {platform}"})
        assert response.status_code == 200, response.text


async def test_bad_input_is_a_scim_error_and_writes_nothing(scim: ScimServer) -> None:
    api = await scim.api()
    async with await scim.http() as http:
        alice = await create(http, "/Users", user("alice@acme.example"))
        detail = error(
            await http.post("/Users", json=user("ALICE@acme.example")), 409, "uniqueness"
        )
        assert "ALICE@acme.example" in detail
        detail = error(
            await http.post("/Groups", json=group("eng", alice, "ghost")), 400, "invalidValue"
        )
        assert "members[1].value" in detail
        assert "ghost" in detail
        error(await http.post("/Users", json={"schemas": [USER_SCHEMA]}), 400, "invalidValue")
        bad_json = await http.post(
            "/Users", content=b"{nope", headers={"Content-Type": "application/scim+json"}
        )
        error(bad_json, 400, "invalidSyntax")
        error(await http.get("/Users", params={"filter": "userName eq"}), 400, "invalidFilter")
        error(await http.get("/Users/unknown"), 404)
        listed = (await http.get("/Groups")).json()
        assert listed["totalResults"] == 0
    assert await relationships(api) == []


async def test_the_same_push_twice_changes_nothing(scim: ScimServer) -> None:
    keyed = await scim.keyed()
    async with await scim.http() as http:
        uid = await create(http, "/Users", user("bob@acme.example", active=True))
        off = patch({"op": "replace", "value": {"active": False}})
        first = await http.patch(f"/Users/{uid}", json=off)
        second = await http.patch(f"/Users/{uid}", json=off)
        assert first.status_code == second.status_code == 204
        assert first.headers["ETag"] == second.headers["ETag"] == 'W/"2"'
        assert first.headers[TOKEN_HEADER] == second.headers[TOKEN_HEADER]
        body = (await http.get(f"/Users/{uid}")).json()
        replaced = await http.put(
            f"/Users/{uid}", json={k: body[k] for k in ("schemas", "userName", "active")}
        )
        assert replaced.status_code == 200
        assert replaced.json()["meta"]["version"] == 'W/"2"'
    audit = audit_pb2_grpc.AuditServiceStub(keyed)  # type: ignore[arg-type]
    request = audit_pb2.QueryDecisionsRequest(
        tenant="acme", kind=audit_pb2.DECISION_KIND_ADMIN, subject=subj(f"user:{uid}")
    )
    assert len([r async for r in audit.QueryDecisions(request)]) == 1


async def test_etags_guard_replace_and_delete(scim: ScimServer) -> None:
    async with await scim.http() as http:
        uid = await create(http, "/Users", user("carol@acme.example"))
        renamed = await http.put(
            f"/Users/{uid}", json=user("carol.b@acme.example"), headers={"If-Match": 'W/"1"'}
        )
        assert renamed.status_code == 200
        assert renamed.headers["ETag"] == 'W/"2"'
        stale = await http.put(
            f"/Users/{uid}", json=user("carol.c@acme.example"), headers={"If-Match": 'W/"1"'}
        )
        error(stale, 412)
        error(await http.delete(f"/Users/{uid}", headers={"If-Match": 'W/"1"'}), 412)
        assert (await http.get(f"/Users/{uid}")).json()["userName"] == "carol.b@acme.example"
        cached = await http.get(f"/Users/{uid}", headers={"If-None-Match": 'W/"2"'})
        assert cached.status_code == 304


async def test_list_filters_sorts_and_pages(scim: ScimServer) -> None:
    async with await scim.http() as http:
        for name in ("erin", "dave", "frank", "alex", "bea"):
            await create(http, "/Users", user(f"{name}@acme.example", externalId=f"x-{name}"))
        page = await http.get(
            "/Users", params={"sortBy": "userName", "startIndex": "2", "count": "2"}
        )
        body = page.json()
        assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (5, 2, 2)
        assert [r["userName"] for r in body["Resources"]] == [
            "bea@acme.example",
            "dave@acme.example",
        ]
        found = await http.get("/Users", params={"filter": 'externalId eq "x-frank"'})
        assert [r["userName"] for r in found.json()["Resources"]] == ["frank@acme.example"]
        # userName compares case-insensitively (RFC 7643 caseExact false).
        found = await http.get("/Users", params={"filter": 'userName sw "ERIN"'})
        assert found.json()["totalResults"] == 1


async def test_group_members_become_relationships_atomically(scim: ScimServer) -> None:
    api = await scim.api()
    async with await scim.http() as http:
        a = await create(http, "/Users", user("a@acme.example"))
        b = await create(http, "/Users", user("b@acme.example"))
        c = await create(http, "/Users", user("c@acme.example"))
        inner = await create(http, "/Groups", group("inner", c))
        outer = await create(http, "/Groups", group("outer", a, b))
        await api.touch("acme", f"document:plan#viewer@group:{outer}#member")
        assert await relationships(api) == sorted(
            [
                f"document:plan#viewer@group:{outer}#member",
                f"group:{inner}#member@user:{c}",
                f"group:{outer}#member@user:{a}",
                f"group:{outer}#member@user:{b}",
            ]
        )
        # One call adds a Group member and removes a User: one revision for both.
        swapped = await http.patch(
            f"/Groups/{outer}",
            json=patch(
                {"op": "remove", "path": "members", "value": [{"value": a}]},
                {"op": "add", "path": "members", "value": [{"value": inner, "type": "Group"}]},
            ),
        )
        assert swapped.status_code == 204, swapped.text
        token = swapped.headers[TOKEN_HEADER]
        decisions = {
            who: (
                await api.check("acme", "document:plan", "view", f"user:{who}", fresh=token)
            ).decision
            for who in (a, b, c)
        }
        assert decisions == {a: DENIED, b: ALLOWED, c: ALLOWED}
        deleted = await http.delete(f"/Groups/{inner}")
        assert deleted.status_code == 204
        assert await relationships(api) == sorted(
            [f"document:plan#viewer@group:{outer}#member", f"group:{outer}#member@user:{b}"]
        )
        members = (await http.get(f"/Groups/{outer}")).json()["members"]
        assert [m["value"] for m in members] == [b]


async def test_tenants_see_only_their_own_resources(scim: ScimServer) -> None:
    async with await scim.http("acme") as acme, await scim.http("globex") as globex:
        uid = await create(acme, "/Users", user("shared@example.com"))
        error(await globex.get(f"/Users/{uid}"), 404)
        assert (await globex.get("/Users")).json()["totalResults"] == 0
        # The same userName is free in another tenant.
        await create(globex, "/Users", user("shared@example.com"))


async def test_entra_string_booleans_suspend_and_reactivate(scim: ScimServer) -> None:
    api = await scim.api()
    async with await scim.http() as http:
        uid = await create(http, "/Users", user("erin@acme.example", active=True))
        await api.touch("acme", f"document:plan#viewer@user:{uid}")
        for value, expected in (("False", DENIED), ("True", ALLOWED)):
            response = await http.patch(
                f"/Users/{uid}", json=patch({"op": "Replace", "path": "active", "value": value})
            )
            assert response.status_code == 204, response.text
            token = response.headers[TOKEN_HEADER]
            reply = await api.check("acme", "document:plan", "view", f"user:{uid}", fresh=token)
            assert reply.decision == expected
            assert (await http.get(f"/Users/{uid}")).json()["active"] is (value == "True")


async def test_suspended_tenants_refuse_pushes_and_deleted_ones_forget(scim: ScimServer) -> None:
    platform = await scim.platform()
    async with await scim.http() as http:
        uid = await create(http, "/Users", user("gus@acme.example"))
        await platform.tenants.SuspendTenant(
            tenants_pb2.SuspendTenantRequest(name="acme", reason="unpaid")
        )
        detail = error(await http.post("/Users", json=user("hal@acme.example")), 409)
        assert "suspended" in detail
        off = patch({"op": "replace", "value": {"active": False}})
        error(await http.patch(f"/Users/{uid}", json=off), 409)
        listed = (await http.get("/Users")).json()  # reads still work
        assert [(r["userName"], r.get("active")) for r in listed["Resources"]] == [
            ("gus@acme.example", None)
        ]
        await platform.tenants.DeleteTenant(
            tenants_pb2.DeleteTenantRequest(name="acme", reason="offboarded")
        )
    async with await scim.http("globex") as globex:
        await create(globex, "/Users", user("ida@globex.example"))
    await platform.create_tenants("acme")
    async with await scim.http() as http:
        assert (await http.get("/Users")).json()["totalResults"] == 0  # purged with acme
        error(await http.get(f"/Users/{uid}"), 404)
