"""`authz keys ... --server`: the key commands as thin clients of KeysService, against a
real server (on a loop of its own thread) over a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from authz_service.cli import main
from authz_service.errors import Unauthenticated
from tests.api.conftest import server_settings, start_app
from tests.cli.test_keys_cli import authenticate, create, dsn, environment  # noqa: F401


@pytest.fixture
def server(dsn: str, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    settings = server_settings(dsn, tmp_path, auth=True, migrate_on_start=True)
    app = asyncio.run_coroutine_threadsafe(start_app(settings), loop).result(timeout=60)
    try:
        yield f"127.0.0.1:{app.port}"
    finally:
        asyncio.run_coroutine_threadsafe(app.stop(grace=1.0), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def remote(
    capsys: pytest.CaptureFixture[str], server: str, admin: str, *args: str
) -> tuple[int, str, str]:
    status = main(["keys", *args, "--server", server, "--api-key", admin])
    out, err = capsys.readouterr()
    return status, out, err


def test_create_list_rotate_revoke_through_the_server(
    capsys: pytest.CaptureFixture[str],
    dsn: str,  # noqa: F811
    server: str,
) -> None:
    # Bootstrap: the first platform admin key, straight into the database.
    _, admin = create(capsys, dsn, "--all-tenants", "--scopes", "admin,check", "--name", "ops")
    status, out, err = remote(
        capsys, server, admin, "create", "--tenant", "acme", "--scopes", "check", "--name", "bill"
    )
    assert status == 0, err
    token = out.strip()
    key_id = token.split("_")[1]
    assert token.startswith(f"azk_{key_id}_")
    assert "shown only this once" in err
    assert asyncio.run(authenticate(dsn, token)) == key_id

    status, out, err = remote(capsys, server, admin, "list", "--tenant", "acme")
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["KEY_ID", "TENANT", "SCOPES"]
    assert [line.split()[:3] for line in lines[1:]] == [[key_id, "acme", "check"]]
    assert token.split("_", 2)[2] not in out

    status, out, err = remote(
        capsys, server, admin, "rotate", key_id, "--tenant", "acme", "--overlap", "0"
    )
    assert status == 0, err
    rotated = out.strip()
    assert rotated != token
    assert asyncio.run(authenticate(dsn, rotated)) == key_id
    with pytest.raises(Unauthenticated, match="rotated"):
        asyncio.run(authenticate(dsn, token))

    status, _, err = remote(capsys, server, admin, "revoke", key_id, "--tenant", "acme")
    assert status == 0, err
    with pytest.raises(Unauthenticated, match="revoked"):
        asyncio.run(authenticate(dsn, rotated))


def test_the_server_checks_the_callers_key(
    capsys: pytest.CaptureFixture[str],
    dsn: str,  # noqa: F811
    server: str,
) -> None:
    _, checker = create(capsys, dsn, "--tenant", "acme", "--scopes", "check")
    status, out, err = remote(
        capsys, server, checker, "create", "--tenant", "acme", "--scopes", "check"
    )
    assert status == 2
    assert out == ""
    assert "PERMISSION_DENIED" in err
    assert "admin" in err


def test_rotate_needs_a_server(capsys: pytest.CaptureFixture[str], dsn: str) -> None:  # noqa: F811
    status = main(["keys", "rotate", "abcdefghijkm", "--database-url", dsn])
    assert status != 0
    assert "--server" in capsys.readouterr().err
