"""AUTHZ_TLS_CLIENT_MAP: certificates bound to a tenant and scopes by subject or SAN."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from authz_service.api.cert_map import load_certificate_map
from authz_service.app import App
from authz_service.credentials import Scope
from authz_service.errors import InvalidArgument
from tests.api.certs import Pair, make_ca, make_client, make_server
from tests.api.conftest import server_settings
from tests.api.helpers import ALLOWED, Api

MAP = """
- match: "CN=operator"
  tenant: "*"
  scopes: [admin, write]
- match: "CN=billing"
  tenant: acme
  scopes: [check, write]
- match: "spiffe://example.org/ns/reports"
  tenant: globex
  scopes: [check]
- match: "spiffe://authz/tenant/acme/scopes/check"
  tenant: globex
  scopes: [check, write]
"""


@pytest.fixture
async def served(pg_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[App, Pair]]:
    ca = make_ca()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "map.yaml").write_text(MAP)
    make_server(ca).write(tmp_path / "server.pem", tmp_path / "server.key")
    settings = server_settings(
        pg_dsn,
        tmp_path,
        auth=True,
        tls_cert=str(tmp_path / "server.pem"),
        tls_key=str(tmp_path / "server.key"),
        tls_client_ca=str(tmp_path / "ca.pem"),
        tls_client_map=str(tmp_path / "map.yaml"),
    )
    app = await App.start(settings)
    try:
        yield app, ca
    finally:
        await app.stop(grace=1.0)


def _channel(app: App, ca: Pair, client: Pair) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(ca.cert_pem, client.key_pem, client.cert_pem)
    return grpc.aio.secure_channel(f"localhost:{app.port}", credentials)


async def test_mapped_subjects_and_sans_act_for_their_tenant(
    served: tuple[App, Pair],
) -> None:
    app, ca = served
    async with _channel(app, ca, make_client(ca, name="operator")) as channel:
        await Api(channel).write_schema()
        await Api(channel).create_tenants("acme", "globex")
    async with _channel(app, ca, make_client(ca, name="billing")) as channel:
        api = Api(channel)
        written = await api.touch("acme", "document:plan#viewer@user:alice")
        reply = await api.check("acme", "document:plan", "view", "user:alice", fresh=written)
        assert reply.decision == ALLOWED
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await api.check("globex", "document:plan", "view", "user:alice")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "cert:CN=billing" in (denied.value.details() or "")
    reports = make_client(ca, "spiffe://example.org/ns/reports", name="reports")
    async with _channel(app, ca, reports) as channel:
        await Api(channel).check("globex", "document:plan", "view", "user:alice")
        with pytest.raises(grpc.aio.AioRpcError) as denied:  # check only: no write
            await Api(channel).touch("globex", "document:plan#viewer@user:alice")
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_certificate_with_two_identities_has_none(served: tuple[App, Pair]) -> None:
    app, ca = served
    # The subject maps to acme, the URI to globex: ambiguous, so it needs a key.
    both = make_client(ca, "spiffe://example.org/ns/reports", name="billing")
    async with _channel(app, ca, both) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await Api(channel).check("acme", "document:plan", "view", "user:alice")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_map_is_read_into_identities(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(MAP)
    mapping = load_certificate_map(path)
    billing = mapping["CN=billing"]
    assert (billing.key_id, billing.tenant, billing.scopes) == (
        "cert:CN=billing",
        "acme",
        frozenset({Scope.CHECK, Scope.WRITE}),
    )
    assert mapping["CN=operator"].platform


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}", "must be a list of entries"),
        ("- match: CN=a\n  tenant: acme\n", "needs exactly `match`, `tenant` and `scopes`"),
        ("- {match: CN=a, tenant: acme, scopes: [read]}", "scope `read` is not one of"),
        ("- {match: '', tenant: acme, scopes: [check]}", "`match` must be a non-empty string"),
        ("- {match: CN=a, tenant: acme, scopes: check}", "`scopes` must be a list"),
        (
            "- {match: CN=a, tenant: acme, scopes: [check]}\n"
            "- {match: CN=a, tenant: globex, scopes: [check]}",
            "entry 2: `CN=a` is mapped twice",
        ),
        ("- [unclosed", "is not YAML"),
        # A key given twice: YAML keeps the last one, which made this entry a platform key.
        (
            "- match: CN=a\n  tenant: acme\n  scopes: [check]\n  tenant: '*'\n",
            "duplicate key `tenant` on line 4 (first on line 2)",
        ),
    ],
)
def test_a_bad_map_names_the_entry_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(InvalidArgument) as refused:
        load_certificate_map(path)
    assert refused.value.field == "AUTHZ_TLS_CLIENT_MAP"
    assert problem in refused.value.message


def test_a_missing_map_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as refused:
        load_certificate_map(tmp_path / "nowhere.yaml")
    assert "cannot be read" in refused.value.message


async def test_a_uri_whose_mapping_disagrees_with_it_has_no_identity(
    served: tuple[App, Pair],
) -> None:
    """docs/auth.md: a URI and a mapped name that disagree yield no identity. Both are
    named `cert:<the URI>`, and the mapping used to win silently (globex, with write)."""
    app, ca = served
    async with _channel(app, ca, make_client(ca, name="operator")) as channel:
        await Api(channel).write_schema()
        await Api(channel).create_tenants("acme", "globex")
    disputed = make_client(ca, "spiffe://authz/tenant/acme/scopes/check", name="disputed")
    async with _channel(app, ca, disputed) as channel:
        for tenant in ("acme", "globex"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await Api(channel).check(tenant, "document:plan", "view", "user:alice")
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, tenant
