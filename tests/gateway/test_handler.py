"""The gateway policy without Envoy or gRPC: every path that is not ALLOWED is a denial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.engine import CheckItem, Decision
from authz_service.errors import LimitExceeded, Unavailable
from authz_service.gateway import Gateway, HttpRequest, parse_gateway_config
from authz_service.model import ObjectRef, SubjectRef
from tests.gateway.issuer import Issuer, gateway_yaml, write_jwks


class FakeCheck:
    def __init__(self, answer: Decision | BaseException = Decision.ALLOWED) -> None:
        self.answer = answer
        self.calls: list[tuple[str, CheckItem]] = []

    async def __call__(self, tenant: str, item: CheckItem) -> tuple[Decision, str]:
        self.calls.append((tenant, item))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer, "01DECISION"


@pytest.fixture
def issuer() -> Issuer:
    return Issuer("EdDSA")


def config_data(tmp_path: Path, issuer: Issuer) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(gateway_yaml(write_jwks(tmp_path / "jwks.json", issuer)))
    return data


@pytest.fixture
def gateway(tmp_path: Path, issuer: Issuer) -> Gateway:
    return Gateway(parse_gateway_config(config_data(tmp_path, issuer)))


def request(
    path: str, token: str | None = None, method: str = "GET", **headers: str
) -> HttpRequest:
    sent = dict(headers)
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return HttpRequest(method, path, sent, request_id="req-1")


async def test_allowed_sets_upstream_headers(gateway: Gateway, issuer: Issuer) -> None:
    check = FakeCheck()
    reply = await gateway.handle(request("/v1/docs/readme", issuer.token(sub="alice")), check)
    assert reply.allowed
    assert dict(reply.headers) == {
        "x-authz-subject": "user:alice",
        "x-authz-tenant": "acme",
        "x-authz-decision-id": "01DECISION",
    }
    assert check.calls == [
        ("acme", CheckItem(ObjectRef("document", "readme"), "view", SubjectRef("user", "alice")))
    ]


@pytest.mark.parametrize("decision", [Decision.DENIED, Decision.CONDITIONAL])
async def test_not_allowed_is_403_with_decision_id(
    gateway: Gateway, issuer: Issuer, decision: Decision
) -> None:
    reply = await gateway.handle(request("/v1/docs/readme", issuer.token()), FakeCheck(decision))
    assert not reply.allowed
    assert reply.status == 403
    assert dict(reply.headers)["content-type"] == "application/json"
    assert json.loads(reply.body) == {
        "decision": "DENIED",
        "decision_id": "01DECISION",
        "request_id": "req-1",
    }


@pytest.mark.parametrize(
    "failure", [LimitExceeded("fan-out"), Unavailable("database"), RuntimeError("bug")]
)
async def test_errors_fail_closed(gateway: Gateway, issuer: Issuer, failure: Exception) -> None:
    reply = await gateway.handle(request("/v1/docs/readme", issuer.token()), FakeCheck(failure))
    assert not reply.allowed
    assert reply.status == 403
    assert json.loads(reply.body)["decision"] == "DENIED"


async def test_unauthenticated_never_reaches_check(gateway: Gateway, issuer: Issuer) -> None:
    check = FakeCheck()
    missing = await gateway.handle(request("/v1/docs/readme"), check)
    assert (missing.status, dict(missing.headers)["www-authenticate"]) == (401, "Bearer")
    expired = await gateway.handle(request("/v1/docs/readme", issuer.token(exp_in=-600)), check)
    assert expired.status == 401
    assert dict(expired.headers)["www-authenticate"] == 'Bearer error="invalid_token"'
    no_tenant = await gateway.handle(request("/v1/docs/x", issuer.token(org_id=None)), check)
    assert json.loads(no_tenant.body)["message"] == "token lacks the `org_id` claim"
    bad_subject = await gateway.handle(request("/v1/docs/x", issuer.token(sub="a@b")), check)
    assert json.loads(bad_subject.body)["message"] == "claim `sub` is not a valid subject id"
    assert check.calls == []


async def test_unmatched_route(tmp_path: Path, issuer: Issuer) -> None:
    data = config_data(tmp_path, issuer)
    deny = Gateway(parse_gateway_config(data))
    reply = await deny.handle(request("/other", issuer.token()), FakeCheck())
    assert (reply.allowed, reply.status) == (False, 403)
    assert json.loads(reply.body)["reason"] == "no route matches"
    data["unmatched"] = "allow"
    allow = Gateway(parse_gateway_config(data))
    passed = await allow.handle(request("/other"), FakeCheck())
    assert passed.allowed
    # Nothing was checked, so identity headers a client wrote must not reach the upstream.
    assert set(passed.remove_headers) == {
        "x-authz-subject",
        "x-authz-tenant",
        "x-authz-decision-id",
    }


SLASH = "path has an encoded slash or a backslash"
UNRESERVED = "path has an encoded letter, digit or `-._~`"
CONTROL = "path has an encoded control character"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/v1/docs%2Froadmap", SLASH),  # served as /v1/docs/roadmap
        ("/v1/docs%2froadmap", SLASH),
        ("/v1%2Fdocs%2Froadmap?x=1", SLASH),
        ("/v1/docs%5Croadmap", SLASH),
        ("/v1/docs%5croadmap", SLASH),
        ("/v1\\docs\\roadmap", SLASH),
        ("/healthz%2F..", SLASH),  # a public route does not pass it either
        # Envoy's normalize_path decodes these; one arriving means it did not run.
        ("/v1/x/%2E%2E/docs/roadmap", UNRESERVED),
        ("/v1/x/.%2e/docs/roadmap", UNRESERVED),
        ("/v1/%64ocs/roadmap", UNRESERVED),
        ("/v1/docs/roadmap%00.png", CONTROL),
        ("/v1/docs%0A/roadmap", CONTROL),
    ],
)
async def test_a_path_the_upstream_may_serve_as_another_is_denied(
    tmp_path: Path, issuer: Issuer, path: str, reason: str
) -> None:
    data = config_data(tmp_path, issuer)
    data["unmatched"] = "allow"  # not even this passes it
    gateway = Gateway(parse_gateway_config(data))
    check = FakeCheck()
    reply = await gateway.handle(request(path, issuer.token()), check)
    assert (reply.allowed, reply.status) == (False, 403)
    assert json.loads(reply.body) == {"decision": "DENIED", "reason": reason, "request_id": "req-1"}
    assert check.calls == []


async def test_escapes_that_change_no_route_pass(gateway: Gateway, issuer: Issuer) -> None:
    check = FakeCheck()
    in_query = await gateway.handle(request("/v1/docs/readme?next=%2Fa%2E", issuer.token()), check)
    assert in_query.allowed
    space = await gateway.handle(request("/v1/docs/a%20b", issuer.token()), check)
    assert json.loads(space.body)["reason"] == "request does not name a valid resource"


async def test_identity_headers_spelled_otherwise_are_removed(
    tmp_path: Path, issuer: Issuer
) -> None:
    """WSGI and CGI read `x_authz_subject` as `x-authz-subject` (both HTTP_X_AUTHZ_SUBJECT):
    the client's must not reach the upstream, whatever the route."""
    data = config_data(tmp_path, issuer)
    data["unmatched"] = "allow"
    data["upstream_headers"]["x_user"] = "{subject}"  # configured with an underscore
    gateway = Gateway(parse_gateway_config(data))
    ours = {"x-authz-subject", "x-authz-tenant", "x-authz-decision-id", "x_user"}
    lookalikes = {"x_authz_subject": "u", "x-authz_tenant": "t", "x_authz_decision_id": "d"}
    sent = {**lookalikes, "x-user": "u", "x_other": "kept", "x-authz-subject": "overwritten"}
    allowed = await gateway.handle(request("/v1/docs/readme", issuer.token(), **sent), FakeCheck())
    assert allowed.allowed
    assert {name for name, _ in allowed.headers} == ours
    assert set(allowed.remove_headers) == {*lookalikes, "x-user"}
    for path in ("/healthz", "/other"):  # public, unmatched: nothing checked
        passed = await gateway.handle(request(path, **sent), FakeCheck())
        assert passed.allowed
        assert set(passed.remove_headers) == {*lookalikes, "x-user", *ours}


async def test_public_route_skips_identity_and_check(gateway: Gateway) -> None:
    check = FakeCheck()
    reply = await gateway.handle(request("/healthz"), check)
    assert reply.allowed
    assert check.calls == []


async def test_value_that_is_no_object_id_is_denied(gateway: Gateway, issuer: Issuer) -> None:
    check = FakeCheck()
    reply = await gateway.handle(request("/v1/docs/a%20b", issuer.token()), check)
    assert reply.status == 403
    assert check.calls == []


async def test_trusted_headers(tmp_path: Path, issuer: Issuer) -> None:
    data = config_data(tmp_path, issuer)
    data["identity"] = {
        "trusted_headers": {"tenant_header": "x-tenant", "subject_header": "x-user"}
    }
    gateway = Gateway(parse_gateway_config(data))
    check = FakeCheck()
    reply = await gateway.handle(
        request("/v1/docs/r", **{"x-tenant": "acme", "x-user": "bob"}), check
    )
    assert reply.allowed
    assert check.calls[0][0] == "acme"
    assert check.calls[0][1].subject == SubjectRef("user", "bob")
    missing = await gateway.handle(request("/v1/docs/r", **{"x-tenant": "acme"}), check)
    assert missing.status == 401
    assert "www-authenticate" not in dict(missing.headers)


async def test_fixed_tenant(tmp_path: Path, issuer: Issuer) -> None:
    data = config_data(tmp_path, issuer)
    del data["identity"]["jwt"]["tenant_claim"]
    data["identity"]["jwt"]["tenant"] = "solo"
    gateway = Gateway(parse_gateway_config(data))
    check = FakeCheck()
    await gateway.handle(request("/v1/docs/r", issuer.token(org_id="ignored")), check)
    assert check.calls[0][0] == "solo"


async def test_jwks_unavailable_is_a_denial_not_a_401(tmp_path: Path, issuer: Issuer) -> None:
    data = config_data(tmp_path, issuer)
    gateway = Gateway(parse_gateway_config(data))
    (tmp_path / "jwks.json").unlink()  # the keys vanish before the first request
    reply = await gateway.handle(request("/v1/docs/r", issuer.token()), FakeCheck())
    assert (reply.allowed, reply.status) == (False, 403)
