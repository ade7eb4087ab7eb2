"""`authz keys create|list|revoke` against a fresh PostgreSQL database, in process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from authz_service.api.auth import Authenticator
from authz_service.cli import main
from authz_service.decisionlog import DecisionKind, RecordFilter, iter_entries, verify_all
from authz_service.errors import Unauthenticated
from authz_service.store import postgres
from tests.api.conftest import server_settings, start_app
from tests.api.helpers import Api
from tests.pg import FreshDatabase, run_aside


@pytest.fixture
def dsn() -> Iterator[str]:
    database = FreshDatabase()
    yield run_aside(database.__aenter__())
    run_aside(database.__aexit__(None, None, None))


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate from the developer's environment; the admin log goes below tmp_path."""
    for name in ("AUTHZ_DATABASE_URL", "AUTHZ_DECISION_LOG", "AUTHZ_LOG_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTHZ_LOG_DIR", str(tmp_path / "decisions"))
    return tmp_path / "decisions-admin"


def keys(capsys: pytest.CaptureFixture[str], dsn: str, *args: str) -> tuple[int, str, str]:
    status = main(["keys", *args, "--database-url", dsn])
    out, err = capsys.readouterr()
    return status, out, err


def create(capsys: pytest.CaptureFixture[str], dsn: str, *args: str) -> tuple[str, str]:
    status, out, err = keys(capsys, dsn, "create", *args)
    assert status == 0, err
    token = out.strip()
    assert token.count("\n") == 0
    assert token.startswith("azk_")
    key_id = token.split("_")[1]
    assert f"`{key_id}`" in err
    assert "shown only this once" in err
    return key_id, token


async def authenticate(dsn: str, token: str) -> str:
    store = await postgres.connect(dsn, min_size=1, max_size=1)
    try:
        return (await Authenticator(store.keys, ttl_s=0).authenticate(f"Bearer {token}")).key_id
    finally:
        await store.close()


def test_create_list_revoke(capsys: pytest.CaptureFixture[str], dsn: str) -> None:
    key_id, token = create(
        capsys,
        dsn,
        "--tenant",
        "acme",
        "--create-tenant",
        "--scopes",
        "check,write",
        "--name",
        "ci",
    )
    assert asyncio.run(authenticate(dsn, token)) == key_id

    status, out, _ = keys(capsys, dsn, "list")
    assert status == 0
    header, row = out.splitlines()
    assert header.split() == ["KEY_ID", "TENANT", "SCOPES", "CREATED", "REVOKED", "NAME"]
    assert row.split()[:3] == [key_id, "acme", "check,write"]
    assert row.split()[4:] == ["-", "ci"]
    assert token.split("_", 2)[2] not in out  # never the secret

    status, _, err = keys(capsys, dsn, "revoke", key_id)
    assert status == 0
    assert "revoked" in err
    status, out, _ = keys(capsys, dsn, "list", "--tenant", "acme")
    assert out.splitlines()[1].split()[4] != "-"
    with pytest.raises(Unauthenticated, match="revoked"):
        asyncio.run(authenticate(dsn, token))


def test_platform_keys_and_tenant_filter(capsys: pytest.CaptureFixture[str], dsn: str) -> None:
    platform, _ = create(capsys, dsn, "--all-tenants", "--scopes", "admin")
    acme, _ = create(capsys, dsn, "--tenant", "acme", "--create-tenant", "--scopes", "check")
    _, out, _ = keys(capsys, dsn, "list", "--tenant", "*")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [platform]
    _, out, _ = keys(capsys, dsn, "list", "--tenant", "acme")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [acme]
    _, out, _ = keys(capsys, dsn, "list")
    assert {line.split()[0] for line in out.splitlines()[1:]} == {platform, acme}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "*", "--scopes", "check"], "--all-tenants"),
        (["--tenant", "acme", "--scopes", "check,read"], "`read` is not one of"),
        (["--tenant", "a/b", "--scopes", "check"], "tenant `a/b`"),
    ],
)
def test_bad_input_creates_nothing(
    capsys: pytest.CaptureFixture[str], dsn: str, args: list[str], message: str
) -> None:
    status, out, err = keys(capsys, dsn, "create", *args)
    assert status == 2
    assert message in err
    assert not out
    assert keys(capsys, dsn, "list")[1].splitlines()[1:] == []


def test_a_key_for_an_unknown_tenant_is_refused_unless_created(
    capsys: pytest.CaptureFixture[str], dsn: str
) -> None:
    status, out, err = keys(capsys, dsn, "create", "--tenant", "acmee", "--scopes", "check")
    assert status == 2
    assert "tenant `acmee` does not exist" in err
    assert "--create-tenant" in err
    assert not out
    assert keys(capsys, dsn, "list")[1].splitlines()[1:] == []
    create(capsys, dsn, "--tenant", "acmee", "--create-tenant", "--scopes", "check")
    create(capsys, dsn, "--tenant", "acmee", "--scopes", "check")  # it exists now


def test_tenant_and_all_tenants_exclude_each_other(dsn: str) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "create", "--tenant", "a", "--all-tenants", "--scopes", "check"])


def test_revoking_an_unknown_key_fails(capsys: pytest.CaptureFixture[str], dsn: str) -> None:
    status, _, err = keys(capsys, dsn, "revoke", "nosuchkeyidx")
    assert status == 2
    assert "does not exist" in err


def test_key_changes_are_in_the_admin_decision_log(
    capsys: pytest.CaptureFixture[str], dsn: str, environment: Path
) -> None:
    acme, _ = create(capsys, dsn, "--tenant", "acme", "--create-tenant", "--scopes", "check")
    platform, _ = create(capsys, dsn, "--all-tenants", "--scopes", "admin,audit")
    assert keys(capsys, dsn, "revoke", acme)[0] == 0
    records = [
        e.entry.record for e in iter_entries(environment, RecordFilter(kind=DecisionKind.ADMIN))
    ]
    seen = [(r.tenant, r.action, r.resource) for r in records]
    assert seen == [
        ("_platform", "create_api_key", f"api_key:{platform}"),
        ("acme", "create_api_key", f"api_key:{acme}"),
        ("acme", "revoke_api_key", f"api_key:{acme}"),
    ]
    assert records[1].details["scopes"] == ["check"]
    assert all(report.ok for report in verify_all(environment, None))


def test_with_the_decision_log_off_nothing_is_logged(
    capsys: pytest.CaptureFixture[str],
    dsn: str,
    environment: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHZ_DECISION_LOG", "off")
    create(capsys, dsn, "--tenant", "acme", "--create-tenant", "--scopes", "check")
    assert not environment.exists()


def test_a_key_that_cannot_be_logged_is_not_created(
    capsys: pytest.CaptureFixture[str], dsn: str, environment: Path
) -> None:
    from authz_service.decisionlog import DecisionLogConfig, DecisionLogWriter

    async def with_log_held() -> tuple[int, str, str]:
        async with DecisionLogWriter(DecisionLogConfig(root=environment)):
            return await asyncio.to_thread(
                keys, capsys, dsn, "create", "--tenant", "a", "--scopes", "check"
            )

    status, out, err = asyncio.run(with_log_held())
    assert status == 2
    assert "in use by another writer" in err
    assert not out
    assert keys(capsys, dsn, "list")[1].splitlines()[1:] == []


def test_a_cli_key_is_accepted_by_a_server_for_its_tenant_only(
    capsys: pytest.CaptureFixture[str], dsn: str, tmp_path: Path
) -> None:
    _, token = create(capsys, dsn, "--tenant", "acme", "--create-tenant", "--scopes", "check")

    async def ask() -> tuple[grpc.StatusCode, grpc.StatusCode]:

        app = await start_app(server_settings(dsn, tmp_path, auth=True))
        codes = []
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                for tenant in ("acme", "globex"):
                    try:
                        await Api(channel).permissions.Check(
                            _request(tenant), metadata=(("authorization", f"Bearer {token}"),)
                        )
                        codes.append(grpc.StatusCode.OK)
                    except grpc.aio.AioRpcError as err:
                        codes.append(err.code())
        finally:
            await app.stop(grace=1.0)
        return codes[0], codes[1]

    own, other = asyncio.run(ask())
    # No schema was written: the call in its own tenant gets past auth and fails later.
    assert own not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    assert other == grpc.StatusCode.PERMISSION_DENIED


def _request(tenant: str) -> object:
    from authz_service.api.gen.authz.v1 import permissions_pb2
    from tests.api.helpers import obj, subj

    return permissions_pb2.CheckRequest(
        tenant=tenant, resource=obj("document:x"), permission="view", subject=subj("user:a")
    )


def test_a_scim_key_for_one_tenant(capsys: pytest.CaptureFixture[str], dsn: str) -> None:
    """The `scim` scope (docs/identity.md) is stored and read back on PostgreSQL."""
    key_id, token = create(capsys, dsn, "--tenant", "acme", "--create-tenant", "--scopes", "scim")
    assert asyncio.run(authenticate(dsn, token)) == key_id
    status, out, _ = keys(capsys, dsn, "list", "--tenant", "acme")
    assert status == 0
    assert out.splitlines()[1].split()[:3] == [key_id, "acme", "scim"]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--expires", "2030-01-01T00:00:00Z"], "--expires"),
        (["--server", "127.0.0.1:1", "--create-tenant"], "--create-tenant"),
    ],
)
def test_an_option_the_chosen_way_cannot_honour_is_refused(
    capsys: pytest.CaptureFixture[str], dsn: str, options: list[str], named: str
) -> None:
    """Before, `--expires` without --server made a key that never expires, and
    --create-tenant with --server was ignored."""
    status, out, err = keys(
        capsys, dsn, "create", "--tenant", "acme", "--scopes", "check", "--create-tenant", *options
    )
    assert status == 2
    assert out == ""
    assert named in err
    status, listed, _ = keys(capsys, dsn, "list")
    assert status == 0
    assert "acme" not in listed  # no key was made
