"""`authz serve` refuses settings it cannot start with: one line naming the variable
(and flag), exit status 2, before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from authz_service.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("AUTHZ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHZ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTHZ_DECISION_LOG", "off")


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    status = main(["serve", "--no-auth", "--database-url", "memory://", *argv])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTHZ_LISTEN", "127.0.0.1:99999"),
        ("AUTHZ_LISTEN", "[::1:5"),
        ("AUTHZ_SCIM_LISTEN", "127.0.0.1:99999"),
        ("AUTHZ_CONSOLE_LISTEN", "127.0.0.1:99999"),
        ("AUTHZ_METRICS_LISTEN", "127.0.0.1:99999"),
        ("AUTHZ_LOG_LEVEL", "VERBOSE"),
        ("AUTHZ_MAX_CONCURRENT_RPCS", "99999999999999999999999"),
        ("AUTHZ_DEFAULT_DEADLINE_MS", "-1"),
        ("AUTHZ_SCIM_USER_TYPE", "bad type!"),
        ("AUTHZ_SCIM_GROUP_TYPE", "bad type!"),
        ("AUTHZ_SCIM_MEMBER_RELATION", "bad type!"),
        ("AUTHZ_LOG_REDACT", "a..b"),
        ("AUTHZ_GATEWAY_CONFIG", "/nonexistent/gateway.yaml"),
    ],
)
def test_serve_refuses_a_bad_setting_naming_its_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    if variable != "AUTHZ_LISTEN":
        monkeypatch.setenv("AUTHZ_LISTEN", "127.0.0.1:0")
    err = _refused(capsys)
    assert err.startswith(f"error: {variable}"), err
    assert value in err


def test_serve_names_the_flag_of_a_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(capsys, "--listen", "127.0.0.1:99999")
    assert err.startswith("error: AUTHZ_LISTEN (--listen): `127.0.0.1:99999`"), err


def test_a_signing_key_that_does_not_exist_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHZ_LOG_SIGNING_KEY", "/nonexistent")
    err = _refused(capsys, "--listen", "127.0.0.1:0")
    assert err.startswith("error: AUTHZ_LOG_SIGNING_KEY (--signing-key): cannot read"), err


@pytest.mark.parametrize(
    "argv",
    [
        ("--workers", "2", "--listen", "127.0.0.1:0"),  # memory:// and port 0 alike
        ("--workers", "2", "--listen", "127.0.0.1:8120"),
    ],
)
def test_several_workers_without_what_they_share_is_status_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    """It was `raise SystemExit("...")`: status 1, which means a negative answer."""
    err = _refused(capsys, *argv)
    assert err.startswith("error: AUTHZ_WORKERS (--workers) 2:"), err


def test_several_workers_need_a_fixed_port(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status = main(
        [
            "serve",
            "--workers",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgresql://x@h/d",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "fixed port" in err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("option", ["--gateway-config", "--tls-client-map"])
def test_a_fifo_for_a_file_setting_is_refused_not_read(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    option: str,
) -> None:
    """Read, it blocked the start for good, and Ctrl-C with it."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo("fifo")
    extra: list[str] = []
    if option == "--tls-client-map":
        Path("x.pem").write_text("x")
        extra = ["--tls-cert", "x.pem", "--tls-key", "x.pem", "--tls-client-ca", "x.pem"]
    err = _refused(capsys, "--listen", "127.0.0.1:0", *extra, option, "fifo")
    assert "cannot read `fifo`: not a regular file" in err, err


def test_ctrl_c_while_the_parser_is_built_is_status_130_without_a_traceback() -> None:
    """The command's imports take about 2 s: a Ctrl-C then printed a traceback."""
    code = (
        "import sys, authz_service.cli as cli\n"
        "def interrupted(command=None):\n"
        "    raise KeyboardInterrupt\n"
        "cli.build_parser = interrupted\n"
        "sys.exit(cli.main(['serve']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 130
    assert done.stderr == ""
