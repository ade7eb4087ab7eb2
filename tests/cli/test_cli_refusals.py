"""Client and database commands refuse bad input in one line with exit status 2: no
traceback, no gRPC C-core noise, and no caller's control character reaching the terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from authz_service.cli import main
from tests.api.certs import make_ca
from tests.pg import DEFAULT_ADMIN_URL

QUESTION = ("check", "document:readme", "view", "user:alice", "--tenant", "acme")
UNREACHABLE = ("--server", "127.0.0.1:1")  # nothing listens: refused before a call matters


@pytest.fixture(autouse=True)
def _no_developer_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTHZ_API_KEY", "AUTHZ_CLIENT_TLS_CA", "AUTHZ_CLIENT_TLS_CERT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AUTHZ_CLIENT_TLS_KEY", raising=False)


def authz(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exit_:  # argparse refusing the arguments
        return int(exit_.code or 0)


def one_line(err: str) -> str:
    """The last line of stderr, which must be the whole of it apart from argparse usage."""
    assert "Traceback" not in err, err
    assert "\x1b" not in err, err
    assert "\x00" not in err, err
    return err.rstrip("\n").splitlines()[-1]


def _url(database: str, user: str = "postgres", host: str = "127.0.0.1:5432") -> str:
    base = DEFAULT_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    return f"postgresql://{user}@{host or base}/{database}"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (_url("authz_no_such_db"), 'database "authz_no_such_db" does not exist'),
        (_url("postgres", user="authz_no_such_role"), "authz_no_such_role"),
        (_url("x", host="127.0.0.1:99999"), "port"),
        ("postgresql://postgres@[::1:5432/x", "not a valid postgresql url"),
    ],
    ids=["no-database", "no-role", "port-too-large", "bad-ipv6"],
)
@pytest.mark.parametrize("command", ["migrate", "import"])
def test_a_database_that_refuses_is_one_line(
    command: str, url: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["migrate"]
    if command == "import":
        path = tmp_path / "rows.ndjson"
        path.write_text('{"resource": "doc:a", "relation": "viewer", "subject": "user:a"}\n')
        argv = ["import", str(path), "--tenant", "t", "--no-progress"]
    assert authz(*argv, "--database-url", url) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: "), line
    assert says in line, line


def test_the_password_in_a_refused_url_is_not_shown(capsys: pytest.CaptureFixture[str]) -> None:
    url = _url("authz_no_such_db", user="postgres:s3cret-pw")
    assert authz("migrate", "--database-url", url) == 2
    err = capsys.readouterr().err
    assert "s3cret-pw" not in err
    one_line(err)


_KEYS = ["k\x1b", "ak_x\r", "a\nb", "k\x00", "clé"]


# An environment variable cannot hold NUL: that key is given by flag only.
@pytest.mark.parametrize(
    ("source", "key"),
    [("flag", k) for k in _KEYS] + [("environment", k) for k in _KEYS if "\x00" not in k],
)
def test_an_api_key_no_header_can_carry_is_refused_before_calling(
    key: str, source: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*QUESTION, *UNREACHABLE]
    if source == "flag":
        argv += ["--api-key", key]
    else:
        monkeypatch.setenv("AUTHZ_API_KEY", key)
    assert authz(*argv) == 2
    err = capsys.readouterr().err
    line = one_line(err)
    assert len(err.splitlines()) == 1, err
    assert ("--api-key" if source == "flag" else "AUTHZ_API_KEY") in line
    assert "UNAVAILABLE" not in line  # refused before dialling
    assert key not in err  # the secret is not echoed
    assert repr(key)[1:-1] not in err


@pytest.mark.parametrize(
    "argv",
    [
        ("keys", "create", "--tenant", "demo", "--scopes", "check"),
        ("keys", "list", "--tenant", "demo"),
        ("keys", "revoke", "k1", "--tenant", "demo"),
        ("scim", "status", "--tenant", "demo"),
        ("service-accounts", "list", "--tenant", "demo"),
    ],
)
def test_every_client_refuses_such_a_key(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert authz(*argv, *UNREACHABLE, "--api-key", "k\x1b") == 2
    line = one_line(capsys.readouterr().err)
    assert "--api-key" in line
    assert "UNAVAILABLE" not in line


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
@pytest.mark.parametrize(
    "argv",
    [
        ("keys", "create", "--tenant", "demo", "--scopes", "check"),
        ("service-accounts", "create-key", "sa1", "--tenant", "demo", "--scopes", "check"),
    ],
)
def test_an_expiry_outside_the_timestamp_range_is_bad_input(
    argv: tuple[str, ...], when: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert authz(*argv, *UNREACHABLE, "--expires", when) == 2
    line = one_line(capsys.readouterr().err)
    assert "--expires" in line
    assert when in line


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (("keys", "rotate", "k1", "--tenant", "demo", "--overlap", "99999999999999999999"),
         "--overlap"),
        (("keys", "rotate", "k1", "--tenant", "demo", "--overlap", str(30 * 86400 + 1)),
         "--overlap"),
        (("keys", "rotate", "k1", "--tenant", "demo", "--overlap", "-1"), "--overlap"),
        (("service-accounts", "report", "--tenant", "demo", "--window-days", "999999999999999"),
         "--window-days"),
        (("service-accounts", "report", "--tenant", "demo", "--window-days", "401"),
         "--window-days"),
        (("service-accounts", "report", "--tenant", "demo", "--window-days", "0"),
         "--window-days"),
    ],
)  # fmt: skip
def test_a_duration_outside_the_servers_limits_is_bad_input(
    argv: tuple[str, ...], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert authz(*argv, *UNREACHABLE) == 2
    line = one_line(capsys.readouterr().err)
    assert f"argument {option}:" in line, line


@pytest.mark.parametrize(
    "argv",
    [
        ("--consistency", "x\x1b[31m"),
        ("--context", "{\x1b[31m"),
        ("--consistency", "at_least_as_fresh\x00"),
    ],
)
def test_a_refused_option_value_is_shown_escaped(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert authz(*QUESTION, *UNREACHABLE, *argv) == 2
    line = one_line(capsys.readouterr().err)
    assert "\\x1b" in line or "\\x00" in line, line


def test_grpc_details_are_escaped_and_capped(capsys: pytest.CaptureFixture[str]) -> None:
    # gRPC's details quote the target: a terminal escape in --server came back raw.
    assert authz(*QUESTION, "--server", "a\x1b[31mb:1") == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: UNAVAILABLE: "), line
    assert authz(*QUESTION, "--server", "h" * 5000 + ":1") == 2
    err = capsys.readouterr().err
    one_line(err)
    assert len(err) < 400, len(err)


def test_a_file_that_cannot_be_read_is_named_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = "x\x1b[31m"
    assert authz("validate", missing) == 2
    assert "\\x1b[31m" in one_line(capsys.readouterr().err)
    # Refused before the database is opened.
    argv = ["import", missing, "--tenant", "t", "--database-url", _url("authz_no_such_db")]
    assert authz(*argv) == 2
    assert "\\x1b[31m" in one_line(capsys.readouterr().err)


@pytest.fixture
def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.pem"
    path.write_text("garbage\n")
    return path


@pytest.mark.parametrize("option", ["--tls-ca", "--tls-cert", "--tls-key"])
def test_a_tls_file_that_is_not_pem_is_named_before_dialling(
    option: str, garbage: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = [*QUESTION, *UNREACHABLE, option, str(garbage)]
    if option == "--tls-cert":
        argv += ["--tls-key", str(garbage)]
    if option == "--tls-key":
        # A real certificate, so that the key is the one at fault.
        cert = tmp_path / "cert.pem"
        cert.write_bytes(make_ca().cert_pem)
        argv += ["--tls-cert", str(cert)]
    assert authz(*argv) == 2
    err = capfd.readouterr().err  # file descriptors: gRPC's C core writes to fd 2
    assert len(err.splitlines()) == 1, err
    line = one_line(err)
    assert option in line
    assert "UNAVAILABLE" not in line
    assert re.search(r"not .*PEM", line), line


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("validate", "fifo"), "cannot read `fifo`: not a regular file"),
        ((*QUESTION, *UNREACHABLE, "--tls-ca", "fifo"), "--tls-ca file `fifo` cannot be read"),
    ],
    ids=["validate", "check --tls-ca"],
)
def test_a_fifo_given_as_a_file_is_refused_not_read(
    tmp_path: Path, argv: tuple[str, ...], says: str
) -> None:
    """Opened, a FIFO waited for a writer that never came, and Ctrl-C did not end the
    wait. Run in its own process, so that a hang fails the test instead of stopping it."""
    os.mkfifo(tmp_path / "fifo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHZ_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-m", "authz_service", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done
    assert says in one_line(done.stderr), done.stderr
