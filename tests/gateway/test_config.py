"""Loading the gateway YAML: a complete example, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from authz_service.errors import InvalidArgument
from authz_service.gateway import load_gateway_config, parse_gateway_config
from authz_service.gateway.config import JwtConfig, TrustedHeadersConfig
from tests.gateway.issuer import Issuer, gateway_yaml, write_jwks


@pytest.fixture
def jwks(tmp_path: Path) -> Path:
    return write_jwks(tmp_path / "jwks.json", Issuer("EdDSA"))


def base(jwks: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(gateway_yaml(jwks))
    return data


def test_example_loads(jwks: Path, tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(gateway_yaml(Path("jwks.json")))  # relative to the config file
    config = load_gateway_config(path)
    assert isinstance(config.identity, JwtConfig)
    assert config.identity.jwks_file == tmp_path / "jwks.json"
    assert config.identity.algorithms == ("RS256", "ES256", "EdDSA")
    assert config.identity.leeway_s == 5
    assert config.unmatched == "deny"
    assert [name for name, _ in config.upstream_headers] == [
        "x-authz-subject",
        "x-authz-tenant",
        "x-authz-decision-id",
    ]
    found = config.route("PUT", "/v1/docs/readme")
    assert found is not None
    route, captured = found
    assert captured == {"id": "readme"}
    assert route.action is not None
    assert route.action.render(captured) == "edit"
    assert config.route("HEAD", "/v1/docs/readme") is not None
    assert config.route("DELETE", "/v1/docs/readme") is None
    assert config.route("GET", "/healthz") is not None


def test_first_matching_route_wins(jwks: Path) -> None:
    data = base(jwks)
    data["routes"] = [
        {"path": "/v1/docs/special", "resource": "document:special", "action": "admin"},
        {"path": "/v1/docs/{id}", "resource": "document:{id}", "action": "view"},
    ]
    config = parse_gateway_config(data)
    found = config.route("GET", "/v1/docs/special")
    assert found is not None
    assert found[0].action is not None
    assert found[0].action.text == "admin"


def test_default_upstream_headers(jwks: Path) -> None:
    data = base(jwks)
    del data["upstream_headers"]
    config = parse_gateway_config(data)
    assert {name for name, _ in config.upstream_headers} == {
        "x-authz-tenant",
        "x-authz-subject",
        "x-authz-decision-id",
    }


def test_trusted_headers(jwks: Path) -> None:
    data = base(jwks)
    data["identity"] = {
        "trusted_headers": {
            "tenant_header": "X-Tenant",
            "subject_header": "x-user",
            "subject_type": "user",
        }
    }
    config = parse_gateway_config(data)
    assert config.identity == TrustedHeadersConfig("x-tenant", "x-user", "user")


def _jwt(data: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = data["identity"]["jwt"]
    return section


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda d: d.update(extra=1), "extra", "unknown field"),
        (lambda d: d["routes"][1].update(methd="GET"), "routes[1].methd", "unknown field"),
        (lambda d: d.pop("routes"), "routes", "is required"),
        (lambda d: d.update(routes=[]), "routes", "non-empty list"),
        (lambda d: d.update(unmatched="maybe"), "unmatched", "`deny` or `allow`"),
        (lambda d: d.update(identity={}), "identity", "exactly one of `jwt`"),
        (lambda d: _jwt(d).pop("issuer"), "identity.jwt.issuer", "is required"),
        (lambda d: _jwt(d).update(audience=[]), "identity.jwt.audience", "string or a list"),
        (
            lambda d: _jwt(d).update(jwks_file="nope.json"),
            "identity.jwt.jwks_file",
            "does not exist",
        ),
        (
            lambda d: _jwt(d).update(jwks_url="https://id.example/jwks"),
            "identity.jwt.jwks_file",
            "exactly one of `jwks_file` and `jwks_url`",
        ),
        (
            lambda d: (_jwt(d).pop("jwks_file"), _jwt(d).update(jwks_url="http://id.example/jwks")),
            "identity.jwt.jwks_url",
            "https",
        ),
        (lambda d: _jwt(d).update(algorithms=["HS256"]), "identity.jwt.algorithms", "`HS256`"),
        (lambda d: _jwt(d).update(tenant="acme"), "identity.jwt.tenant_claim", "exactly one"),
        (lambda d: _jwt(d).pop("tenant_claim"), "identity.jwt.tenant_claim", "exactly one"),
        (lambda d: _jwt(d).update(leeway_s=-1), "identity.jwt.leeway_s", "from 0 to 300"),
        (lambda d: _jwt(d).update(subject_type="User!"), "identity.jwt.subject_type", "type name"),
        (lambda d: d["routes"][1].update(path="docs"), "routes[1].path", "start with `/`"),
        (lambda d: d["routes"][1].update(method="G3T"), "routes[1].method", "HTTP method"),
        (lambda d: d["routes"][1].pop("action"), "routes[1].action", "is required"),
        (
            lambda d: d["routes"][1].update(resource="document:{doc}"),
            "routes[1].resource",
            "not a known placeholder",
        ),
        (lambda d: d["routes"][1].update(resource="{id}"), "routes[1].resource", "type:id"),
        (lambda d: d["routes"][1].update(action="View"), "routes[1].action", "permission name"),
        (lambda d: d["routes"][0].update(action="view"), "routes[0].public", "public route"),
        (lambda d: d["routes"][0].update(public="yes"), "routes[0].public", "true or false"),
        (
            lambda d: d["upstream_headers"].update({"x-a": "{secret}"}),
            "upstream_headers.x-a",
            "not a known placeholder",
        ),
        (lambda d: d["upstream_headers"].update({"Host": "x"}), "upstream_headers.Host", "header"),
        (
            lambda d: d["upstream_headers"].update({"X-Authz-Subject": "{subject}"}),
            "upstream_headers.X-Authz-Subject",
            "listed twice",
        ),
    ],
)
def test_errors_name_the_field(jwks: Path, change: Any, field: str, message: str) -> None:
    data = base(jwks)
    change(data)
    with pytest.raises(InvalidArgument, match=message) as info:
        parse_gateway_config(data)
    assert info.value.field == field


def test_jwks_url_on_loopback_may_be_plain_http(jwks: Path) -> None:
    data = base(jwks)
    _jwt(data).pop("jwks_file")
    _jwt(data)["jwks_url"] = "http://127.0.0.1:8080/jwks.json"
    config = parse_gateway_config(data)
    assert isinstance(config.identity, JwtConfig)
    assert config.identity.jwks_url == "http://127.0.0.1:8080/jwks.json"


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read gateway config") as info:
        load_gateway_config(tmp_path / "missing.yaml")
    assert info.value.field == "gateway_config"
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [\n")
    with pytest.raises(InvalidArgument, match="not valid YAML"):
        load_gateway_config(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(InvalidArgument, match="must be a mapping"):
        load_gateway_config(bad)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda text: text + "unmatched: allow\n", "unmatched"),  # after `unmatched: deny`
        (
            lambda text: text.replace("    action: view\n", "    action: view\n    action: edit\n"),
            "action",
        ),
        (
            lambda text: text.replace("    leeway_s: 5\n", "    leeway_s: 5\n    issuer: x\n"),
            "issuer",
        ),
        (lambda text: text + '  x-authz-subject: "{tenant}"\n', "x-authz-subject"),
    ],
    ids=["top level", "in a route", "in identity.jwt", "in upstream_headers"],
)
def test_a_key_given_twice_is_an_error(jwks: Path, tmp_path: Path, edit: Any, key: str) -> None:
    """YAML parsers keep the last of two equal keys: `unmatched: deny` then
    `unmatched: allow` would load as allow, unseen."""
    text = edit(gateway_yaml(jwks))
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.strip().startswith(key)]
    first, second = lines[:2]
    with pytest.raises(InvalidArgument) as info:
        load_gateway_config(path)
    assert info.value.field == "gateway_config"
    assert f"duplicate key `{key}` on line {second} (first on line {first})" in info.value.message


def test_a_merge_key_may_be_overridden(jwks: Path, tmp_path: Path) -> None:
    """`<<` merges a mapping whose keys the explicit ones replace, as YAML means it to."""
    text = gateway_yaml(jwks).replace(
        "  - method: PUT\n    path: /v1/docs/{id}\n",
        '  - <<: {method: GET, path: "/v1/docs/{id}", action: view}\n    method: PUT\n',
    )
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    found = load_gateway_config(path).route("PUT", "/v1/docs/readme")
    assert found is not None
    assert found[0].action is not None
    assert found[0].action.text == "edit"
