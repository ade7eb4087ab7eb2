"""`authz audit` refuses bad input (a number, a time, a key file, a key directory) in one
line naming the option and the value, with exit 2, never a traceback (exit 1 means a
verification failed); options are refused before the log or the database is read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from authz_service.cli import main


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("query", "--limit", "-1"),
        ("query", "--limit", "many"),
        ("replay", "--concurrency", "0"),
        ("replay", "--concurrency", "-4"),
    ],
)
def test_a_bad_number_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", command, "--log-dir", str(tmp_path), option, value])
    assert exited.value.code == 2
    assert f"argument {option}: `{value}` is not a whole number of" in capsys.readouterr().err


def test_a_limit_of_zero_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", "--log-dir", str(tmp_path), "--json", "--limit", "0"]) == 0
    assert capsys.readouterr().out == ""


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `authz ARGV`, expect exit 2, return the one line it printed on stderr."""
    try:
        status = main(list(argv))
    except SystemExit as exited:  # argparse refuses before the command runs
        status = exited.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_a_limit_past_the_largest_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = "99999999999999999999999"
    line = _refused(capsys, "audit", "query", "--log-dir", str(tmp_path), "--limit", huge)
    assert f"argument --limit: `{huge}` is too large (at most {sys.maxsize})" in line


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_outside_the_calendar_in_utc_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    for command in ("query", "replay"):
        line = _refused(capsys, "audit", command, "--log-dir", str(tmp_path), option, value)
        assert f"argument {option}: `{value}` is outside the years 1 to 9999 in UTC" in line


def test_keygen_into_a_directory_it_cannot_make_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "file"
    file.write_text("")
    for directory, reason in (
        ("/proc/no-such-dir", "no such file or directory"),  # /proc takes no new entries
        (str(file), "file exists"),
        (str(file / "sub"), "not a directory"),
    ):
        line = _refused(capsys, "audit", "keygen", directory)
        assert line == f"error: cannot create key directory `{directory}`: {reason}"
    # A directory that exists but takes no file.
    line = _refused(capsys, "audit", "keygen", "/proc/self")
    assert line.startswith("error: cannot write key file `/proc/self/decision-log-signing.key")


@pytest.mark.parametrize(
    ("key", "reason"),
    [(".", "is a directory"), ("/proc/self/mem", "input/output error")],
)
def test_verify_with_a_key_file_it_cannot_read_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, reason: str
) -> None:
    path = tmp_path if key == "." else Path(key)
    line = _refused(
        capsys, "audit", "verify", "--log-dir", str(tmp_path), "--public-key", str(path)
    )
    assert f"argument --public-key: cannot read key file `{path}`: {reason}" in line
